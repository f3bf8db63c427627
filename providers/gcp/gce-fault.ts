/**
 * What went wrong in a Compute Engine call, from either place GCE reports it: an HTTP error in Google's JSON error
 * format (`{ error: { code, message, status, errors: [{ domain, reason, message }], details } }`,
 * https://cloud.google.com/apis/design/errors; Compute Engine still fills the older `errors[]` list), or the `error.errors[]` of an Operation that finished
 * (https://cloud.google.com/compute/docs/reference/rest/v1/zoneOperations). Stock-outs usually arrive the second way,
 * after the insert was accepted. In REST mode the SDK's HTTP layer (gaxios) throws the raw body as the message.
 */
import type { protos } from '@google-cloud/compute';

export type FaultKind =
  | 'capacity'
  | 'quota'
  | 'throttled'
  | 'auth'
  | 'not-found'
  | 'already-exists'
  | 'invalid'
  | 'unavailable';

export interface GceFault {
  readonly kind: FaultKind;
  readonly message: string;
  readonly httpStatus?: number | undefined;
  /** `errors[].reason`, ErrorInfo reasons and operation error codes, as GCE sent them. */
  readonly reasons: readonly string[];
  /** For quota faults: the quota's name and limit, when GCE said. */
  readonly quota?: { readonly name: string; readonly limit: number } | undefined;
}

const CAPACITY = new Set([
  'ZONE_RESOURCE_POOL_EXHAUSTED',
  'ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS',
  // The bulk API's synchronous form (https://cloud.google.com/compute/docs/troubleshooting/troubleshooting-bulk-vm-creation).
  'insufficientCapacity',
]);
const QUOTA = new Set(['QUOTA_EXCEEDED', 'quotaExceeded', 'RESOURCE_QUOTA_EXCEEDED']);
const THROTTLED = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'RATE_LIMIT_EXCEEDED']);
const NOT_FOUND = new Set(['notFound', 'RESOURCE_NOT_FOUND']);
const ALREADY_EXISTS = new Set(['alreadyExists', 'RESOURCE_ALREADY_EXISTS']);

function classify(httpStatus: number | undefined, reasons: readonly string[]): FaultKind {
  const has = (set: ReadonlySet<string>) => reasons.some((r) => set.has(r));
  if (has(CAPACITY)) return 'capacity';
  if (has(QUOTA)) return 'quota';
  if (has(THROTTLED) || httpStatus === 429) return 'throttled';
  if (httpStatus === 401 || httpStatus === 403) return 'auth';
  if (has(NOT_FOUND) || httpStatus === 404) return 'not-found';
  if (has(ALREADY_EXISTS) || httpStatus === 409) return 'already-exists';
  if (httpStatus === 400) return 'invalid';
  return 'unavailable';
}

/** "Quota 'NVIDIA_L4_GPUS' exceeded.  Limit: 8.0 in region us-central1." */
function quotaOf(message: string, details?: protos.google.cloud.compute.v1.IErrorDetails[] | null) {
  const info = details?.find((d) => d.quotaInfo)?.quotaInfo;
  const match = /Quota '([^']+)' exceeded\.\s*Limit:\s*([\d.]+)/.exec(message);
  const name = info?.limitName || info?.metricName || match?.[1];
  const limit = info?.limit ?? (match?.[2] !== undefined ? Number(match[2]) : undefined);
  return name !== undefined && limit !== undefined && Number.isFinite(limit) ? { name, limit } : undefined;
}

interface JsonError {
  code?: unknown;
  message?: unknown;
  status?: unknown;
  errors?: { reason?: unknown; message?: unknown }[];
  details?: { reason?: unknown }[];
}

function parseBody(text: unknown): JsonError | undefined {
  if (typeof text !== 'string' || !text.trimStart().startsWith('{')) return undefined;
  try {
    const parsed = JSON.parse(text) as { error?: JsonError };
    return typeof parsed.error === 'object' && parsed.error !== null ? parsed.error : undefined;
  } catch {
    return undefined;
  }
}

const GRPC_TO_HTTP: Readonly<Record<number, number>> = { 3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 16: 401 };

/** Credential failures that never reached Compute Engine (no ADC, refresh refused, metadata server absent). */
const AUTH_MESSAGE =
  /credential|refresh token|access token|invalid_grant|unauthorized_client|invalid_client/i;

/** The fault of an error thrown by an SDK call. */
export function faultFromError(error: unknown): GceFault {
  const e = (typeof error === 'object' && error !== null ? error : {}) as {
    message?: unknown;
    status?: unknown;
    code?: unknown;
    reason?: unknown;
    response?: { data?: unknown; status?: unknown };
    config?: { url?: unknown };
  };
  const text = typeof error === 'string' ? error : typeof e.message === 'string' ? e.message : String(error);
  const body = parseBody(e.response?.data) ?? parseBody(text);
  let httpStatus =
    typeof e.status === 'number'
      ? e.status
      : typeof e.response?.status === 'number'
        ? e.response.status
        : typeof body?.code === 'number'
          ? body.code
          : undefined;
  // gax's GoogleError carries a gRPC code instead.
  if (httpStatus === undefined && typeof e.code === 'number') httpStatus = GRPC_TO_HTTP[e.code];
  const reasons = [
    ...(body?.errors ?? []).map((x) => x.reason),
    ...(body?.details ?? []).map((x) => x.reason),
    e.reason,
  ].filter((r): r is string => typeof r === 'string' && r.length > 0);
  const message =
    (typeof body?.message === 'string' ? body.message : undefined) ??
    (body?.errors ?? []).map((x) => x.message).find((m): m is string => typeof m === 'string') ??
    text;
  const url = typeof e.config?.url === 'string' ? e.config.url : undefined;
  // A failed token request is a credentials problem whatever its status says.
  const fromAuth =
    (url !== undefined && !url.includes('/compute/v1/')) ||
    (httpStatus === undefined && AUTH_MESSAGE.test(text));
  const kind = fromAuth ? 'auth' : classify(httpStatus, reasons);
  const network = typeof e.code === 'string' ? ` (${e.code})` : '';
  return {
    kind,
    message: `${message}${network}`,
    httpStatus,
    reasons,
    ...(kind === 'quota' ? { quota: quotaOf(message) } : {}),
  };
}

/** The fault of a finished Operation, or undefined when it succeeded. */
export function faultFromOperation(op: protos.google.cloud.compute.v1.IOperation): GceFault | undefined {
  const errors = op.error?.errors ?? [];
  if (errors.length === 0) return undefined;
  const reasons = errors.flatMap((x) => [
    x.code ?? '',
    ...(x.errorDetails ?? []).map((d) => d.errorInfo?.reason ?? ''),
  ]);
  const codes = reasons.filter((r) => r.length > 0);
  const first = errors[0];
  const message = errors.map((x) => `${x.code ?? 'ERROR'}: ${x.message ?? ''}`.trim()).join('; ');
  const httpStatus = op.httpErrorStatusCode ?? undefined;
  const kind = classify(httpStatus === 0 ? undefined : httpStatus, codes);
  return {
    kind,
    message,
    httpStatus,
    reasons: codes,
    ...(kind === 'quota' ? { quota: quotaOf(first?.message ?? '', first?.errorDetails) } : {}),
  };
}
