/**
 * Error bodies as Google APIs send them (https://cloud.google.com/apis/design/errors), with the `errors[]` list
 * Compute Engine still fills: `{ "error": { "code", "message", "errors": [{ "message", "domain", "reason" }],
 * "status" } }`. Rate limits also carry a google.rpc.ErrorInfo in `details`.
 */
export interface GoogleErrorSpec {
  readonly http: number;
  readonly reason: string;
  readonly message?: string;
  /** Canonical status name; derived from `http` when omitted. */
  readonly status?: string;
  readonly domain?: string;
}

const STATUS: Readonly<Record<number, string>> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ALREADY_EXISTS',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

export function googleErrorBody(spec: GoogleErrorSpec): { error: Record<string, unknown> } {
  const message = spec.message ?? spec.reason;
  const rateLimited = spec.reason === 'rateLimitExceeded' || spec.reason === 'userRateLimitExceeded';
  return {
    error: {
      code: spec.http,
      message,
      errors: [
        { message, domain: spec.domain ?? (rateLimited ? 'usageLimits' : 'global'), reason: spec.reason },
      ],
      status: spec.status ?? (rateLimited ? 'RESOURCE_EXHAUSTED' : (STATUS[spec.http] ?? 'UNKNOWN')),
      ...(rateLimited
        ? {
            details: [
              {
                '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
                reason: 'RATE_LIMIT_EXCEEDED',
                domain: 'googleapis.com',
                metadata: { service: 'compute.googleapis.com' },
              },
            ],
          }
        : {}),
    },
  };
}

/** The errors the fake sends by itself, worded as GCE words them. */
export const errors = {
  unauthenticated: (): GoogleErrorSpec => ({
    http: 401,
    reason: 'authError',
    message:
      'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
  }),
  notFound: (resource: string): GoogleErrorSpec => ({
    http: 404,
    reason: 'notFound',
    message: `The resource '${resource}' was not found`,
  }),
  invalid: (message: string): GoogleErrorSpec => ({ http: 400, reason: 'invalid', message }),
  rateLimited: (): GoogleErrorSpec => ({
    http: 429,
    reason: 'rateLimitExceeded',
    message:
      "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'compute.googleapis.com'.",
  }),
};
