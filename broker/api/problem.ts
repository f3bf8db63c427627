/**
 * Errors as RFC 9457 problem+json bodies. Every error the API returns goes through `problemFor`, so a client sees
 * one shape, with `field` naming the request field that was wrong.
 */
import { GpubrokerError, NotFoundError, ValidationError } from '../../lib/errors.ts';
import { SpendLimitError } from '../billing/spend-limits.ts';
import type { Problem } from './schemas.ts';

export class HttpProblem extends GpubrokerError {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly field?: string,
  ) {
    super(`http_${status}`, detail);
  }
}

export function problemFor(error: unknown): Problem {
  if (error instanceof HttpProblem) return body(error.status, error.title, error.message, error.field);
  if (error instanceof ValidationError) return body(400, 'Invalid request', error.message, error.field);
  if (error instanceof NotFoundError) return body(404, 'Not found', error.message);
  if (error instanceof SpendLimitError) return body(402, 'Payment required', error.message);
  return body(500, 'Internal error', 'the broker failed to handle the request; it has been logged');
}

function body(status: number, title: string, detail: string, field?: string): Problem {
  return {
    type: `https://gpubroker.dev/problems/${title.toLowerCase().replace(/\s+/g, '-')}`,
    title,
    status,
    detail,
    ...(field !== undefined ? { field } : {}),
  };
}
