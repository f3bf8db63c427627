/**
 * Retrying throttled calls: exponential backoff with equal jitter, slept on the provider's Clock, a bounded number
 * of times. GCE answers rate limits with HTTP 429 or 403 `rateLimitExceeded`
 * (https://cloud.google.com/compute/api-rate-limits); what should be retried is the caller's decision.
 */
import type { Clock } from '../../lib/clock.ts';
import type { Random } from '../../lib/random.ts';

export interface BackoffPolicy {
  /** Tries in all, the first one included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 20_000 };

/** The wait before retry number `retry` (0-based): half fixed, half random, so replicas do not retry in step. */
export function backoffDelay(policy: BackoffPolicy, retry: number, random: Random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  return Math.round(ceiling / 2 + random.next() * (ceiling / 2));
}

/**
 * Runs `call` until it succeeds, fails with an error `retryable` rejects, or has been tried `policy.attempts`
 * times; then rethrows the last error, with the delay a caller should wait before trying again.
 */
export async function withBackoff<T>(
  clock: Clock,
  policy: BackoffPolicy,
  random: Random,
  retryable: (error: unknown) => boolean,
  call: () => Promise<T>,
): Promise<T> {
  for (let retry = 0; ; retry++) {
    try {
      return await call();
    } catch (error) {
      if (!retryable(error)) throw error;
      const delay = backoffDelay(policy, retry, random);
      if (retry + 1 >= policy.attempts) throw new BackoffExhausted(error, delay);
      await clock.sleep(delay);
    }
  }
}

/** The last error of a call that stayed throttled through every retry. */
export class BackoffExhausted extends Error {
  constructor(
    readonly last: unknown,
    readonly retryAfterMs: number,
  ) {
    super('retries exhausted', { cause: last });
  }
}
