import type { Clock } from '../lib/clock.ts';

/**
 * Offerings that reported a stock-out, left out of plans until their entry expires (SkyPilot's blocked
 * resources, Karpenter's unavailable-offerings cache).
 */
export class UnavailableCache {
  private readonly until = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  block(offeringId: string, forMs: number): void {
    this.until.set(offeringId, Math.max(this.until.get(offeringId) ?? 0, this.clock.now() + forMs));
  }

  /** Offerings blocked now (expired entries are dropped). */
  blocked(): string[] {
    const now = this.clock.now();
    for (const [id, until] of this.until) if (until <= now) this.until.delete(id);
    return [...this.until.keys()].sort();
  }
}
