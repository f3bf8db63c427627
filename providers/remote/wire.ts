/**
 * The wire format of providers served over HTTP (`gpubroker clouds serve`): typed provider errors travel as JSON
 * objects carrying their class's code and fields, and come back as the same classes, so a broker talking to a
 * remote provider decides exactly as it would in-process.
 */
import { z } from 'zod';
import {
  InsufficientCapacityError,
  InvalidRequestError,
  type ProviderError,
  ProviderUnavailableError,
  QuotaExceededError,
  ThrottledError,
} from '../provider-errors.ts';

export const provisionRequestSchema = z.object({
  offeringId: z.string(),
  count: z.number(),
  idempotencyKey: z.string(),
  tags: z.record(z.string(), z.string()).optional(),
  zone: z.string().optional(),
});

export const terminateRequestSchema = z.object({ instanceIds: z.array(z.string()) });

export const listFilterSchema = z.object({
  tags: z.record(z.string(), z.string()).optional(),
  includeTerminated: z.boolean().optional(),
});

export interface WireError {
  readonly code: string;
  readonly vendor: string;
  /** The message without the `vendor: ` (and `field: `) prefix the error classes add. */
  readonly detail: string;
  readonly offeringId?: string;
  readonly retryAfterMs?: number;
  readonly quota?: string;
  readonly limit?: number;
  readonly requested?: number;
  readonly field?: string;
  readonly region?: string;
  /** A ThrottledError's `retried` (sent only when true). */
  readonly retried?: boolean;
}

/** One line of the events stream: the opening line gives the sequence number reached, then one line per event. */
export type EventLine =
  | { readonly hello: true; readonly seq: number }
  | { readonly seq: number; readonly event: unknown };

const strip = (message: string, prefix: string) =>
  message.startsWith(`${prefix}: `) ? message.slice(prefix.length + 2) : message;

export function errorToWire(error: ProviderError): WireError {
  const detail = strip(error.message, error.vendor);
  if (error instanceof InsufficientCapacityError)
    return {
      code: error.code,
      vendor: error.vendor,
      detail,
      offeringId: error.offeringId,
      retryAfterMs: error.retryAfterMs,
    };
  if (error instanceof QuotaExceededError)
    return {
      code: error.code,
      vendor: error.vendor,
      detail,
      quota: error.quota,
      limit: error.limit,
      requested: error.requested,
    };
  if (error instanceof ThrottledError)
    return {
      code: error.code,
      vendor: error.vendor,
      detail,
      retryAfterMs: error.retryAfterMs,
      ...(error.retried ? { retried: true } : {}),
    };
  if (error instanceof InvalidRequestError)
    return { code: error.code, vendor: error.vendor, detail: strip(detail, error.field), field: error.field };
  if (error instanceof ProviderUnavailableError)
    return {
      code: error.code,
      vendor: error.vendor,
      detail,
      ...(error.region ? { region: error.region } : {}),
    };
  return { code: 'provider_unavailable', vendor: error.vendor, detail };
}

/** The typed error a wire error stands for; anything unrecognised is a ProviderUnavailableError (outcome unknown). */
export function errorFromWire(wire: WireError): ProviderError {
  switch (wire.code) {
    case 'insufficient_capacity':
      return new InsufficientCapacityError(
        wire.vendor,
        wire.offeringId ?? '',
        wire.retryAfterMs ?? 60_000,
        wire.detail,
      );
    case 'quota_exceeded':
      return new QuotaExceededError(
        wire.vendor,
        wire.quota ?? '',
        wire.limit ?? 0,
        wire.requested ?? 0,
        wire.detail,
      );
    case 'throttled':
      return new ThrottledError(wire.vendor, wire.retryAfterMs ?? 1000, wire.detail, wire.retried === true);
    case 'invalid_request':
      return new InvalidRequestError(wire.vendor, wire.field ?? 'request', wire.detail);
    default:
      return new ProviderUnavailableError(wire.vendor, wire.region, wire.detail);
  }
}
