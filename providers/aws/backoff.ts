/**
 * Exponential backoff for throttled EC2 calls (RequestLimitExceeded), as AWS asks of API clients
 * (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html). The SDK's own retries are off, so the
 * waits are ours, on the adapter's Clock, and a test can measure them.
 */
export interface BackoffPolicy {
  /** Retries after the first attempt; then the call fails with ThrottledError. */
  readonly maxRetries: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { maxRetries: 5, baseDelayMs: 250, maxDelayMs: 10_000 };

/** The wait before retry number `attempt + 1`: base × 2^attempt, capped. No jitter, so runs stay reproducible. */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number): number {
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
}
