/**
 * At most `limit` containers starting at once on a machine. A cold start is a burst of CPU (a runtime booting,
 * a bundle loading); a hundred at once on a small machine starve everything else of it, the agent's own heartbeats
 * included, until the broker takes the machine for lost. Containers wait their turn here instead; a start ends when
 * the container is ready or has failed.
 */
export class StartGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new RangeError(`limit must be a positive integer, got ${limit}`);
  }

  /** Resolves when this start may go; call the returned function once it is over. */
  async enter(): Promise<() => void> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next start; otherwise it is free.
      if (next) next();
      else this.running--;
    };
  }
}
