/** Rendering of event envelopes: the payload decoded by type URL, printed the way ctr prints it. */
import { anyTypeName, unpackAny } from "@berth/api";
import type { Envelope } from "@berth/api/services/events/v1";
import type { Registry } from "@bufbuild/protobuf";
import { goJsonMessage, goRfc3339Nano, goTimeString } from "../../go-format.js";

export interface DecodedEvent {
  /** The event's type URL as sent (`containerd.events.TaskExit`); empty when the envelope has no event. */
  readonly typeUrl: string;
  /** The event as Go's encoding/json renders containerd's struct, or `undefined` if its type is unknown. */
  readonly json: string | undefined;
}

/** Decodes an envelope's Any by its (bare or prefixed) type URL, e.g. with `apiRegistry` (every @berth/api message). */
export function decodeEvent(envelope: Pick<Envelope, "event">, registry: Registry): DecodedEvent {
  const any = envelope.event;
  if (any === undefined || any.typeUrl === "") return { typeUrl: "", json: undefined };
  const desc = registry.getMessage(anyTypeName(any));
  if (desc === undefined) return { typeUrl: any.typeUrl, json: undefined };
  try {
    const message = unpackAny(registry, any);
    return { typeUrl: any.typeUrl, json: message === undefined ? undefined : goJsonMessage(desc, message) };
  } catch {
    return { typeUrl: any.typeUrl, json: undefined }; // undecodable bytes: show the type instead
  }
}

/**
 * One line as ctr prints it: `fmt.Println(e.Timestamp, e.Namespace, e.Topic, string(json))`, so
 * `2006-01-02 15:04:05.999999999 +0000 UTC default /tasks/exit {"container_id":"c1",…}`.
 * An event of unknown type shows its type URL in place of the JSON.
 */
export function formatEventLine(envelope: Envelope, registry: Registry): string {
  const { typeUrl, json } = decodeEvent(envelope, registry);
  return `${goTimeString(envelope.timestamp)} ${envelope.namespace} ${envelope.topic} ${json ?? typeUrl}\n`;
}

/** `--json`: one object per line; `event` is the decoded payload (ctr's field names) or null. */
export function formatEventJson(envelope: Envelope, registry: Registry): string {
  const { typeUrl, json } = decodeEvent(envelope, registry);
  const head = JSON.stringify({
    timestamp: goRfc3339Nano(envelope.timestamp),
    namespace: envelope.namespace,
    topic: envelope.topic,
    type: typeUrl,
  });
  return `${head.slice(0, -1)},"event":${json ?? "null"}}\n`;
}
