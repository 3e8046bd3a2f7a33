import type { Adaptor } from "./filter.js";

/** Wraps a function as an Adaptor. */
export function adaptorFunc(field: (path: readonly string[]) => string | undefined): Adaptor {
  return { field };
}

/** Label (or annotation) sets as objects carry them. */
export type LabelSet = Readonly<Record<string, string>> | ReadonlyMap<string, string>;

const hasOwn = (o: object, key: string): boolean => Object.hasOwn(o, key);

function lookup(labels: LabelSet | undefined, key: string): string | undefined {
  if (labels === undefined) return undefined;
  if (labels instanceof Map) return labels.get(key);
  const record = labels as Readonly<Record<string, string>>;
  return hasOwn(record, key) ? record[key] : undefined;
}

/**
 * Adapts a label map: the path, joined with `.`, is the key, so `labels.a.b` and `labels."a.b"` both read
 * the label `a.b`. A label is present even when its value is empty.
 */
export function adaptLabels(labels: LabelSet | undefined): Adaptor {
  return { field: (path) => (path.length === 0 ? undefined : lookup(labels, path.join("."))) };
}

/** What `adaptObject` accepts for a field: a value, a nested field map, or an adaptor for the rest of the path. */
export type FieldValue = string | number | boolean | bigint | null | undefined | Adaptor | FieldMap;
export interface FieldMap {
  readonly [name: string]: FieldValue;
}

const isAdaptor = (v: unknown): v is Adaptor =>
  typeof v === "object" && v !== null && typeof (v as { field?: unknown }).field === "function";

/**
 * Builds an adaptor from a map of fields. A path walks nested maps one segment at a time; a scalar is the
 * value when the path ends on it (numbers, booleans and bigints as decimal text); `null`/`undefined`, a map,
 * or a path that runs past a scalar is absent; an adaptor receives the rest of the path (for labels:
 * `adaptObject({ id, labels: adaptLabels(labels) })`). Empty strings are present; pass `undefined` for
 * fields that should count as absent.
 */
export function adaptObject(fields: FieldMap): Adaptor {
  return {
    field(path) {
      if (path.length === 0) return undefined;
      let current: FieldValue = fields;
      for (let i = 0; i < path.length; i++) {
        if (isAdaptor(current)) return current.field(path.slice(i));
        if (typeof current !== "object" || current === null) return undefined;
        const map: FieldMap = current;
        const key = path[i]!;
        current = hasOwn(map, key) ? map[key] : undefined;
      }
      if (isAdaptor(current)) return current.field([]);
      if (current === null || current === undefined || typeof current === "object") return undefined;
      return String(current);
    },
  };
}

const nonEmpty = (s: string | undefined): string | undefined => (s ? s : undefined);

/** Image fields the images adaptor reads (cf. containerd images.Image). */
export interface ImageFields {
  readonly name: string;
  readonly target?: {
    readonly digest?: string;
    readonly mediaType?: string;
    readonly annotations?: LabelSet;
  };
  readonly labels?: LabelSet;
  /** The target's annotations; used when `target.annotations` is not given. */
  readonly annotations?: LabelSet;
}

/**
 * Images: `name`, `target.digest`, `target.mediatype` (present when non-empty), `labels.<key>`,
 * `annotations.<key>` (the target descriptor's annotations).
 */
export function adaptImage(image: ImageFields): Adaptor {
  return adaptObject({
    name: nonEmpty(image.name),
    target: {
      digest: nonEmpty(image.target?.digest),
      mediatype: nonEmpty(image.target?.mediaType),
    },
    labels: adaptLabels(image.labels),
    annotations: adaptLabels(image.target?.annotations ?? image.annotations),
  });
}

/** Container fields the containers adaptor reads (cf. containerd containers.Container). */
export interface ContainerFields {
  readonly id: string;
  readonly image?: string;
  readonly runtime?: { readonly name?: string };
  readonly labels?: LabelSet;
}

/** Containers: `id`, `image`, `runtime.name` (present when non-empty), `labels.<key>`. */
export function adaptContainer(container: ContainerFields): Adaptor {
  return adaptObject({
    id: nonEmpty(container.id),
    image: nonEmpty(container.image),
    runtime: { name: nonEmpty(container.runtime?.name) },
    labels: adaptLabels(container.labels),
  });
}

/** Content info fields the content adaptor reads (cf. containerd content.Info). */
export interface ContentFields {
  readonly digest: string;
  readonly size?: number | bigint;
  readonly labels?: LabelSet;
}

/**
 * Content: `digest` (always present), `labels.<key>`. `size` is recognised but, as in containerd (a TODO
 * there), never present, so `size==…` matches nothing and `size!=…` everything.
 */
export function adaptContent(info: ContentFields): Adaptor {
  return adaptObject({ digest: info.digest, size: undefined, labels: adaptLabels(info.labels) });
}

/** Snapshot kinds as the snapshots adaptor names them. */
export type SnapshotKindName = "active" | "view" | "committed";

/** Snapshot info fields the snapshots adaptor reads (cf. containerd snapshots.Info). */
export interface SnapshotFields {
  readonly name: string;
  readonly parent?: string;
  /** `active`, `view` or `committed`, any letter case; other kinds are absent. */
  readonly kind: string;
  readonly labels?: LabelSet;
}

/**
 * Snapshots: `name` and `parent` (always present, `""` for no parent, as in containerd), `kind` (`active`,
 * `view` or `committed`), `labels.<key>`.
 */
export function adaptSnapshot(info: SnapshotFields): Adaptor {
  const kind = info.kind.toLowerCase();
  return adaptObject({
    name: info.name,
    parent: info.parent ?? "",
    kind: kind === "active" || kind === "view" || kind === "committed" ? kind : undefined,
    labels: adaptLabels(info.labels),
  });
}

/** Lease fields the leases adaptor reads. */
export interface LeaseFields {
  readonly id: string;
  readonly labels?: LabelSet;
}

/** Leases: `id` (present when non-empty), `labels.<key>`. */
export function adaptLease(lease: LeaseFields): Adaptor {
  return adaptObject({ id: nonEmpty(lease.id), labels: adaptLabels(lease.labels) });
}

/** Ingest status fields the statuses adaptor reads (cf. containerd content.Status). */
export interface StatusFields {
  readonly ref: string;
}

/** Content ingest statuses (`ListStatuses`): `ref` (always present). */
export function adaptStatus(status: StatusFields): Adaptor {
  return adaptObject({ ref: status.ref });
}

/** Plugin fields the introspection adaptor reads. */
export interface PluginFields {
  readonly type: string;
  readonly id: string;
  readonly capabilities?: readonly string[];
  readonly platforms?: readonly unknown[];
}

/**
 * Plugins (Introspection.Plugins): `type`, `id` (present when non-empty). `capabilities` and `platforms` are
 * recognised but, as in containerd (collections cannot be matched yet), never present.
 */
export function adaptPlugin(plugin: PluginFields): Adaptor {
  return adaptObject({
    type: nonEmpty(plugin.type),
    id: nonEmpty(plugin.id),
    capabilities: undefined,
    platforms: undefined,
  });
}

/** Event fields as a plain record (proto field names: `container_id`, `labels`, nested messages). */
export interface EventFields {
  readonly [name: string]: unknown;
}

/** An event envelope as the events service filters it. */
export interface EnvelopeFields {
  readonly topic: string;
  readonly namespace: string;
  /** The decoded event: its fields as a record, or an adaptor of its own. */
  readonly event?: EventFields | Adaptor;
}

/**
 * Event envelopes (Events.Subscribe): `topic`, `namespace` (present when non-empty) and `event.<field…>`,
 * read from the event's fields the way containerd's generated protobuf field paths do.
 */
export function adaptEnvelope(envelope: EnvelopeFields): Adaptor {
  const event = envelope.event;
  const eventAdaptor = event === undefined ? undefined : isAdaptor(event) ? event : adaptEventFields(event);
  return adaptObject({
    topic: nonEmpty(envelope.topic),
    namespace: nonEmpty(envelope.namespace),
    event: eventAdaptor ?? undefined,
  });
}

/**
 * Adapts a decoded event like containerd's generated `Field` methods: a string field is present when
 * non-empty; a nested record is a nested message, walked one segment at a time, unless the rest of the path
 * joined with `.` names one of its string entries (a label map: `event.labels.a.b` reads label `a.b`, and a
 * label is present even when empty); other values (numbers, booleans, timestamps) are absent.
 */
export function adaptEventFields(fields: EventFields): Adaptor {
  return {
    field(path) {
      let current: unknown = fields;
      for (let i = 0; i < path.length; i++) {
        if (isAdaptor(current)) return current.field(path.slice(i));
        if (!isPlainRecord(current)) return undefined;
        const key = path[i]!;
        if (hasOwn(current, key)) {
          const value = current[key];
          if (i === path.length - 1) {
            if (typeof value === "string") return value === "" ? undefined : value;
            return isAdaptor(value) ? value.field([]) : undefined;
          }
          current = value;
          continue;
        }
        const joined = path.slice(i).join(".");
        if (i < path.length - 1 && hasOwn(current, joined) && typeof current[joined] === "string") {
          return current[joined] as string;
        }
        return undefined;
      }
      return undefined;
    },
  };
}

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array || v instanceof Date) {
    return false;
  }
  return true;
}
