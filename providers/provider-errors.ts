/**
 * Typed errors of the Provider contract. The broker decides what to do from the class alone (retry later, block
 * the offering, give up), never from a message; each carries a stable `code` for logs and the HTTP layer.
 */
import { GpubrokerError } from '../lib/errors.ts';

/** Base class of every error a Provider method may throw. `vendor` names the cloud that raised it. */
export class ProviderError extends GpubrokerError {
  constructor(
    code: string,
    readonly vendor: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(code, `${vendor}: ${message}`, options);
  }
}

/**
 * The offering cannot be had now (stock-out, spot capacity gone, zone full). Nothing was provisioned. Retrying the
 * same offering before `retryAfterMs` is unlikely to help; the broker blocks it for a while and re-plans without it.
 */
export class InsufficientCapacityError extends ProviderError {
  constructor(
    vendor: string,
    readonly offeringId: string,
    readonly retryAfterMs: number,
    message: string,
  ) {
    super('insufficient_capacity', vendor, message);
  }
}

/** The account's quota would be exceeded. Nothing was provisioned; retrying does not help until usage drops. */
export class QuotaExceededError extends ProviderError {
  constructor(
    vendor: string,
    readonly quota: string,
    readonly limit: number,
    readonly requested: number,
    message: string,
  ) {
    super('quota_exceeded', vendor, message);
  }
}

/**
 * The API rate limit was hit. Nothing happened; the same call may be repeated after `retryAfterMs`.
 *
 * Who retries a throttled call, so that retries never stack (a call retried inside another's retries):
 * - an adapter that speaks to a cloud's API (aws, gcp, azure) retries each throttled API call itself (a page, a
 *   poll, a write), with `withBackoff` (lib/backoff.ts) on its Clock and as its vendor asks (Retry-After, jitter);
 *   when its retries run out it throws this error with `retried` true;
 * - an error with `retried` false comes from a provider that throttles without waiting (the simulated clouds):
 *   the actuator (broker/act.ts) retries its provision and terminate calls a few times, `retryAfterMs` doubled at
 *   each retry;
 * - nobody retries an error with `retried` true in process: the actuator fails the provision (the loop re-plans)
 *   or keeps the terminate pending, readers keep their last answer, and the next tick asks again.
 */
export class ThrottledError extends ProviderError {
  constructor(
    vendor: string,
    readonly retryAfterMs: number,
    message: string,
    /** The provider already retried the call with backoff until its retries ran out. */
    readonly retried = false,
  ) {
    super('throttled', vendor, message);
  }
}

/**
 * The request is wrong and repeating it cannot succeed: unknown offering, bad count, an idempotency key reused
 * with different parameters. Nothing happened.
 */
export class InvalidRequestError extends ProviderError {
  constructor(
    vendor: string,
    readonly field: string,
    message: string,
  ) {
    super('invalid_request', vendor, `${field}: ${message}`);
  }
}

/**
 * The provider (or one of its regions) does not answer: outage, network failure, 5xx. The outcome of a write is
 * unknown, so the caller repeats it with the same idempotency key, which is always safe.
 */
export class ProviderUnavailableError extends ProviderError {
  constructor(
    vendor: string,
    readonly region: string | undefined,
    message: string,
    options?: ErrorOptions,
  ) {
    super('provider_unavailable', vendor, message, options);
  }
}
