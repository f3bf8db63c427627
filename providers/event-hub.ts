/**
 * Fan-out of provider events to any number of subscribers: synchronous listeners (simulations, recorders) and
 * async iterators (the Provider contract's `events()`). Each iterator buffers what it has not consumed yet, so a
 * slow consumer loses nothing and never blocks the publisher.
 */
export class EventHub<T> {
  private readonly listeners = new Set<(event: T) => void>();
  private readonly backlog: T[] = [];
  private delivering = false;
  private closed = false;

  /**
   * Delivers `event` to every current subscriber, in subscription order. An event published by a listener while
   * another is being delivered waits its turn, so every subscriber sees events in the order they happened; a
   * listener that throws does not stop delivery (its error is rethrown on a later turn).
   */
  publish(event: T): void {
    this.backlog.push(event);
    if (this.delivering) return;
    this.delivering = true;
    try {
      for (let i = 0; i < this.backlog.length; i++) {
        const next = this.backlog[i] as T;
        for (const listener of this.listeners) {
          try {
            listener(next);
          } catch (error) {
            queueMicrotask(() => {
              throw error;
            });
          }
        }
      }
    } finally {
      this.backlog.length = 0;
      this.delivering = false;
    }
  }

  /** Calls `listener` synchronously for every event published from now on; returns the unsubscribe function. */
  subscribe(listener: (event: T) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** An async iterable over the events published from the moment of this call until `signal` aborts or `close()`. */
  iterate(signal?: AbortSignal): AsyncIterable<T> {
    const queue: T[] = [];
    let head = 0;
    let wake: (() => void) | undefined;
    let done = this.closed || signal?.aborted === true;
    const finish = () => {
      done = true;
      unsubscribe();
      this.enders.delete(finish);
      signal?.removeEventListener('abort', finish);
      wake?.();
    };
    const unsubscribe = this.subscribe((event) => {
      queue.push(event);
      wake?.();
    });
    this.enders.add(finish);
    signal?.addEventListener('abort', finish, { once: true });
    if (done) finish();

    const iterator: AsyncIterableIterator<T> = {
      next: async (): Promise<IteratorResult<T>> => {
        for (;;) {
          if (head < queue.length) {
            const value = queue[head++] as T;
            if (head > 1024 && head * 2 > queue.length) {
              queue.splice(0, head);
              head = 0;
            }
            return { value, done: false };
          }
          if (done) return { value: undefined, done: true };
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      },
      return: async (): Promise<IteratorResult<T>> => {
        finish();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Ends every iteration (after it drains what it buffered) and drops all listeners. */
  close(): void {
    this.closed = true;
    for (const end of [...this.enders]) end();
    this.listeners.clear();
  }

  private readonly enders = new Set<() => void>();
}
