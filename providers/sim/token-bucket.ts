import type { Clock } from '../../lib/clock.ts';

/** API rate limiting as clouds do it: a bucket of `burst` tokens refilled at `perSecond`; each call takes one. */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly clock: Clock,
    private readonly burst: number,
    private readonly perSecond: number,
  ) {
    this.tokens = burst;
    this.updatedAt = clock.now();
  }

  /** Takes a token and returns 0, or returns the ms until one is available (taking nothing). */
  take(): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) * this.perSecond) / 1000);
    this.updatedAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.perSecond));
  }

  /** Its tokens and when they were counted, to save and restore (see sim-state.ts). */
  get state(): { tokens: number; updatedAtMs: number } {
    return { tokens: this.tokens, updatedAtMs: this.updatedAt };
  }

  set state(saved: { tokens: number; updatedAtMs: number }) {
    this.tokens = saved.tokens;
    this.updatedAt = saved.updatedAtMs;
  }
}
