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

/** The API rate limit was hit. Nothing happened; the same call may be repeated after `retryAfterMs`. */
export class ThrottledError extends ProviderError {
  constructor(
    vendor: string,
    readonly retryAfterMs: number,
    message: string,
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
