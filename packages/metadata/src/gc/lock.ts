/**
 * The collector's lock (containerd's `DB.wlock`): writers that put a blob on disk and then record it hold it
 * shared across both steps; the collector holds it exclusively while it sweeps and cleans the backend, so it
 * never removes a blob that is about to be recorded.
 */
export class GcLock {
  #shared = 0;
  #exclusive = false;
  readonly #waiting: Array<{ exclusive: boolean; wake: () => void }> = [];

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire(false);
    try {
      return await fn();
    } finally {
      this.#shared--;
      this.#drain();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire(true);
    try {
      return await fn();
    } finally {
      this.#exclusive = false;
      this.#drain();
    }
  }

  #acquire(exclusive: boolean): Promise<void> {
    if (this.#waiting.length === 0 && this.#grant(exclusive)) return Promise.resolve();
    return new Promise((wake) => this.#waiting.push({ exclusive, wake }));
  }

  #grant(exclusive: boolean): boolean {
    if (this.#exclusive) return false;
    if (exclusive) {
      if (this.#shared > 0) return false;
      this.#exclusive = true;
      return true;
    }
    this.#shared++;
    return true;
  }

  /** Wakes waiters in arrival order (an exclusive waiter blocks later shared ones, so the collector gets in). */
  #drain(): void {
    while (this.#waiting.length > 0) {
      const next = this.#waiting[0]!;
      if (!this.#grant(next.exclusive)) return;
      this.#waiting.shift();
      next.wake();
    }
  }
}
