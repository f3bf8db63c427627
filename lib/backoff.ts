/**
 * Retrying a call that failed for now (throttling): exponential backoff, capped, optionally with equal jitter from a
 * seeded Random, slept on the Clock, a bounded number of times. The one retry loop of provider calls; who retries
 * which failure, so that retries never stack, is the Provider contract's rule (`ThrottledError`,
 * providers/provider-errors.ts).
 */
import type { Clock } from './clock.ts';
import type { Random } from './random.ts';

export interface BackoffPolicy {
  /** Retries after the first attempt; then `BackoffExhausted`. */
  readonly maxRetries: number;
  /** The wait before the first retry; it doubles at each retry after. */
  readonly baseDelayMs: number;
  /** The longest backoff (a failure may ask for a longer wait: `RetryOptions.atLeastMs`). */
  readonly maxDelayMs: number;
}

/**
 * The wait before retry `retry` (0 for the first): base × 2^retry, capped at `maxDelayMs`. With a `jitter` generator,
 * equal jitter: half of that fixed and half drawn, rounded to a whole ms, so that replicas do not retry in step.
 */
export function backoffDelayMs(policy: BackoffPolicy, retry: number, jitter?: Random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  return jitter ? Math.round(ceiling / 2 + jitter.next() * (ceiling / 2)) : ceiling;
}

export interface RetryOptions {
  readonly clock: Clock;
  readonly policy: BackoffPolicy;
  /** Whether a failure is retried; any other is rethrown at once. */
  readonly retryable: (error: unknown) => boolean;
  /** The first wait as the failure names it (a ThrottledError's retryAfterMs), in place of the policy's base. */
  readonly baseDelayFrom?: (error: unknown) => number;
  /** The least wait the failure asks for (a Retry-After header), if any: no wait is shorter. */
  readonly atLeastMs?: (error: unknown) => number | undefined;
  /** Equal jitter drawn from this generator; none without. */
  readonly jitter?: Random;
  /** Ends a wait early: the sleep's rejection (the signal's reason) is thrown. */
  readonly signal?: AbortSignal;
}

/**
 * Runs `call` until it succeeds, fails with an error `retryable` rejects (rethrown as it is), or fails retryably
 * once more than `policy.maxRetries` allows: then `BackoffExhausted`, with the last error and the wait that would
 * have come next (what to tell a caller about when to try again).
 */
export async function withBackoff<T>(options: RetryOptions, call: () => Promise<T>): Promise<T> {
  const { clock, policy, retryable, baseDelayFrom, atLeastMs, jitter, signal } = options;
  for (let retry = 0; ; retry++) {
    try {
      return await call();
    } catch (error) {
      if (!retryable(error)) throw error;
      const backoff = backoffDelayMs(
        baseDelayFrom ? { ...policy, baseDelayMs: baseDelayFrom(error) } : policy,
        retry,
        jitter,
      );
      const delayMs = Math.max(backoff, atLeastMs?.(error) ?? 0);
      if (retry >= policy.maxRetries) throw new BackoffExhausted(error, retry + 1, delayMs);
      await clock.sleep(delayMs, signal);
    }
  }
}

/** A call that still failed retryably after its last retry. */
export class BackoffExhausted extends Error {
  constructor(
    /** The last attempt's error. */
    readonly last: unknown,
    /** Attempts made, the first included. */
    readonly attempts: number,
    /** The wait the next retry would have had. */
    readonly retryAfterMs: number,
  ) {
    super(`still failing after ${attempts} attempts`, { cause: last });
  }
}
