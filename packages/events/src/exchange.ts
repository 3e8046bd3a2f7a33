import { ResourceExhaustedError } from "@berth/errdefs";
import { validateNamespace, validateTopic } from "@berth/identifiers";

/** An event payload: a protobuf message packed as containerd packs it (bare type URL). */
export interface EventPayload {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

export interface Envelope {
  readonly timestamp: Date;
  readonly namespace: string;
  readonly topic: string;
  readonly event: EventPayload;
}

export interface Publisher {
  publish(namespace: string, topic: string, event: EventPayload): void;
}

export interface Forwarder {
  forward(envelope: Envelope): void;
}

/** Decides whether an envelope is delivered to a subscriber. */
export type EnvelopeMatcher = (envelope: Envelope) => boolean;

export interface SubscribeOptions {
  readonly match?: EnvelopeMatcher;
  readonly signal?: AbortSignal;
  /** Envelopes queued for a slow subscriber before it is dropped with ResourceExhausted. */
  readonly maxQueued?: number;
}

export interface Subscriber {
  subscribe(options?: SubscribeOptions): AsyncIterable<Envelope>;
}

interface Subscription {
  readonly match: EnvelopeMatcher | undefined;
  readonly queue: Envelope[];
  readonly maxQueued: number;
  wake: (() => void) | undefined;
  failed: Error | undefined;
}

const DEFAULT_MAX_QUEUED = 10_000;

/**
 * Broadcasts events to subscribers (containerd's `events/exchange`). Publishing never blocks: each subscriber
 * has its own queue, and one that falls too far behind is dropped rather than slowing the daemon.
 */
export class Exchange implements Publisher, Forwarder, Subscriber {
  readonly #subscriptions = new Set<Subscription>();
  #closed = false;

  get subscriberCount(): number {
    return this.#subscriptions.size;
  }

  publish(namespace: string, topic: string, event: EventPayload): void {
    validateNamespace(namespace);
    validateTopic(topic);
    this.#broadcast({ timestamp: new Date(), namespace, topic, event });
  }

  forward(envelope: Envelope): void {
    validateNamespace(envelope.namespace);
    validateTopic(envelope.topic);
    this.#broadcast(envelope);
  }

  #broadcast(envelope: Envelope): void {
    for (const sub of this.#subscriptions) {
      if (sub.failed) continue;
      if (sub.match && !sub.match(envelope)) continue;
      if (sub.queue.length >= sub.maxQueued) {
        sub.failed = new ResourceExhaustedError(`event subscriber fell behind by ${sub.queue.length} events`);
      } else {
        sub.queue.push(envelope);
      }
      const wake = sub.wake;
      sub.wake = undefined;
      wake?.();
    }
  }

  subscribe(options: SubscribeOptions = {}): AsyncIterable<Envelope> {
    const sub: Subscription = {
      match: options.match,
      queue: [],
      maxQueued: options.maxQueued ?? DEFAULT_MAX_QUEUED,
      wake: undefined,
      failed: undefined,
    };
    const subscriptions = this.#subscriptions;
    const isClosed = () => this.#closed;
    // Registered now, not on first iteration: events published right after subscribe() must not be missed.
    subscriptions.add(sub);
    const signal = options.signal;
    return {
      async *[Symbol.asyncIterator]() {
        const onAbort = () => {
          const wake = sub.wake;
          sub.wake = undefined;
          wake?.();
        };
        signal?.addEventListener("abort", onAbort);
        try {
          for (;;) {
            while (sub.queue.length > 0) yield sub.queue.shift() as Envelope;
            if (sub.failed) throw sub.failed;
            if (signal?.aborted || isClosed()) return;
            await new Promise<void>((resolve) => {
              sub.wake = resolve;
            });
          }
        } finally {
          signal?.removeEventListener("abort", onAbort);
          subscriptions.delete(sub);
        }
      },
    };
  }

  /** Ends every subscription (daemon shutdown). */
  close(): void {
    this.#closed = true;
    for (const sub of this.#subscriptions) {
      const wake = sub.wake;
      sub.wake = undefined;
      wake?.();
    }
  }
}
