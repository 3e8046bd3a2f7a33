import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { packAny } from "@berth/api";
import { type EnvelopeSchema, Events } from "@berth/api/services/ttrpc/events/v1";
import { connectTtrpcClient, createTtrpcServiceClient, type TtrpcClient } from "@berth/ttrpc";

/** Where task events go: the daemon's ttrpc `containerd.services.events.ttrpc.v1.Events/Forward`. */
export interface EventPublisher {
  publish<D extends DescMessage>(namespace: string, topic: string, schema: D, event: MessageShape<D>): void;
  /** Resolves when everything queued so far has been sent (or given up on). */
  flush(): Promise<void>;
  close(): void;
}

/**
 * Sends events in order over one ttrpc connection to `<daemon address>.ttrpc` (TTRPC_ADDRESS, which
 * containerd and berthd give their shims), reconnecting when it drops. An event that cannot be delivered
 * after a few tries is dropped with a log line: the exit status itself stays available through Wait/State.
 */
export class TtrpcEventPublisher implements EventPublisher {
  readonly #address: string;
  #client: TtrpcClient | undefined;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(address: string) {
    this.#address = address;
  }

  publish<D extends DescMessage>(namespace: string, topic: string, schema: D, event: MessageShape<D>): void {
    const envelope: MessageInitShape<typeof EnvelopeSchema> = {
      timestamp: timestampFromDate(new Date()),
      namespace,
      topic,
      event: packAny(schema, event),
    };
    this.#chain = this.#chain.then(() => this.#send(envelope));
  }

  flush(): Promise<void> {
    return this.#chain;
  }

  async #send(envelope: MessageInitShape<typeof EnvelopeSchema>): Promise<void> {
    for (let attempt = 0; attempt < 3 && !this.#closed; attempt++) {
      try {
        if (this.#client === undefined || this.#client.closed) {
          this.#client = await connectTtrpcClient(this.#address);
        }
        await createTtrpcServiceClient(this.#client, Events).forward({ envelope }, { timeoutMs: 5000 });
        return;
      } catch (err) {
        this.#client?.close();
        this.#client = undefined;
        if (attempt === 2) console.error(`berth shim: dropped event ${envelope.topic}: ${String(err)}`);
        else await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
      }
    }
  }

  close(): void {
    this.#closed = true;
    this.#client?.close();
  }
}

/** Drops events (no daemon ttrpc address was given). */
export class NullEventPublisher implements EventPublisher {
  publish(): void {}
  flush(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
}
