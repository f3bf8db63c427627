/**
 * Azure's failures as the contract's typed errors. ARM answers errors as `{ error: { code, message } }`; the SDK
 * raises them as a `RestError` (statusCode, code, response headers), except for a long-running operation that ends
 * Failed, which @azure/core-lro raises as a plain Error reading
 * "The long-running operation has failed. <code>. <message>".
 * https://github.com/Azure/azure-resource-manager-rpc/blob/master/v1.0/common-api-details.md#error-response-content
 */
import {
  InsufficientCapacityError,
  InvalidRequestError,
  ProviderError,
  ProviderUnavailableError,
  QuotaExceededError,
} from '../provider-errors.ts';

export const AZURE = 'azure';

/** What the adapter reads from any error the SDK or the credential raised. */
export interface ArmFailure {
  /** HTTP status; undefined when no response came (network, TLS, credential) or an operation failed. */
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly message: string;
  /** From a `Retry-After` header (seconds or an HTTP date), in ms. */
  readonly retryAfterMs: number | undefined;
  /** The credential could not produce a token (no Entra ID call succeeded). */
  readonly credential: boolean;
  /** A long-running operation ended Failed (its status resource said so; `code` is the operation's error code). */
  readonly operationFailed: boolean;
}

interface RestErrorLike {
  readonly name: string;
  readonly message: string;
  readonly statusCode?: number;
  readonly code?: string;
  readonly response?: { readonly headers?: { get(name: string): string | undefined } };
}

const LRO_FAILED = /^The long-running operation has failed(?:\. ([A-Za-z0-9_.-]+)\. ([\s\S]*))?$/;
/** What @azure/core-lro raises when the operation ended Canceled. */
const LRO_CANCELED = 'Operation was canceled';

/** Errors @azure/identity raises when a credential cannot get a token. */
const CREDENTIAL_ERRORS = new Set([
  'CredentialUnavailableError',
  'AuthenticationError',
  'AggregateAuthenticationError',
]);

export function armFailure(error: unknown, nowMs: number): ArmFailure {
  const e = error as RestErrorLike;
  const message = typeof e?.message === 'string' ? e.message : String(error);
  if (e?.name === 'RestError') {
    const header = e.response?.headers?.get('retry-after');
    return {
      status: e.statusCode,
      code: e.code,
      message,
      retryAfterMs: header === undefined ? undefined : parseRetryAfter(header, nowMs),
      credential: false,
      operationFailed: false,
    };
  }
  const lro = LRO_FAILED.exec(message);
  if (lro)
    return {
      status: undefined,
      code: lro[1] ?? 'OperationFailed',
      message: lro[2] ?? message,
      retryAfterMs: undefined,
      credential: false,
      operationFailed: true,
    };
  return {
    status: undefined,
    code: message === LRO_CANCELED ? 'Canceled' : undefined,
    message,
    retryAfterMs: undefined,
    credential: CREDENTIAL_ERRORS.has(e?.name),
    operationFailed: message === LRO_CANCELED,
  };
}

/** `Retry-After` is seconds or an HTTP date: https://www.rfc-editor.org/rfc/rfc9110#field.retry-after */
export function parseRetryAfter(value: string, nowMs: number): number | undefined {
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

export function isThrottled(failure: ArmFailure): boolean {
  return failure.status === 429;
}

/**
 * Capacity errors: the size is not offered to this subscription there (`SkuNotAvailable`), or Azure has no machine for
 * it now. https://learn.microsoft.com/en-us/azure/azure-resource-manager/troubleshooting/error-sku-not-available
 * https://learn.microsoft.com/en-us/troubleshoot/azure/virtual-machines/windows/allocation-failure
 */
const CAPACITY_CODES = new Set([
  'SkuNotAvailable',
  'AllocationFailed',
  'ZonalAllocationFailed',
  'OverconstrainedAllocationRequest',
  'OverconstrainedZonalAllocationRequest',
]);

export function isCapacityFailure(failure: ArmFailure): boolean {
  return failure.code !== undefined && CAPACITY_CODES.has(failure.code);
}

/**
 * vCPU quota errors: `OperationNotAllowed` or `QuotaExceeded` with a quota message, e.g. "Operation could not be
 * completed as it results in exceeding approved standardNCADSA100v4Family Cores quota. Additional details - …
 * Current Limit: 24, Current Usage: 0, Additional Required: 48, …" or "Operation results in exceeding quota limits
 * of Core. Maximum allowed: 4, Current in use: 4, Additional requested: 2."
 * https://learn.microsoft.com/en-us/azure/azure-resource-manager/templates/error-resource-quota
 */
export function quotaOf(
  failure: ArmFailure,
): { readonly name: string; readonly limit: number; readonly requested: number } | undefined {
  const quotaCode = failure.code === 'QuotaExceeded' || failure.code === 'ResourceQuotaExceeded';
  if (!quotaCode && !(failure.code === 'OperationNotAllowed' && /quota/i.test(failure.message)))
    return undefined;
  const m = failure.message;
  const name =
    /exceeding approved (.+?) quota/i.exec(m)?.[1] ?? /quota limits of (.+?)\./i.exec(m)?.[1] ?? 'vCPUs';
  const limit = Number(
    /Current Limit: (\d+)/i.exec(m)?.[1] ?? /Maximum allowed: (\d+)/i.exec(m)?.[1] ?? Number.NaN,
  );
  const requested = Number(
    /Additional Required: (\d+)/i.exec(m)?.[1] ?? /Additional requested: (\d+)/i.exec(m)?.[1] ?? Number.NaN,
  );
  return {
    name,
    limit: Number.isFinite(limit) ? limit : 0,
    requested: Number.isFinite(requested) ? requested : 0,
  };
}

export interface ErrorContext {
  readonly offeringId?: string;
  readonly region?: string;
  readonly capacityRetryAfterMs: number;
  readonly nowMs: number;
  /** Errors a repeat cannot fix become InvalidRequestError; for terminate and reads they stay "unavailable". */
  readonly invalidAllowed: boolean;
}

/** Any error raised while talking to Azure, as one of the contract's typed errors. */
export function toProviderError(error: unknown, context: ErrorContext): ProviderError {
  if (error instanceof ProviderError) return error;
  const f = armFailure(error, context.nowMs);
  const unavailable = (message: string) =>
    new ProviderUnavailableError(AZURE, context.region, message, { cause: error });
  if (f.credential) return unavailable(`no usable Azure credentials: ${f.message}`);
  if (f.status === 401) return unavailable(`authentication failed (${f.code ?? 401}): ${f.message}`);
  if (f.status === 403) return unavailable(`not authorized (${f.code ?? 403}): ${f.message}`);
  if (isCapacityFailure(f) && context.offeringId !== undefined)
    return new InsufficientCapacityError(
      AZURE,
      context.offeringId,
      context.capacityRetryAfterMs,
      `${f.code}: ${f.message}`,
    );
  const quota = quotaOf(f);
  if (quota)
    return new QuotaExceededError(
      AZURE,
      quota.name,
      quota.limit,
      quota.requested,
      `${f.code}: ${f.message} (limits are in vCPUs)`,
    );
  if (f.code === 'ResourceGroupNotFound' || f.code === 'SubscriptionNotFound')
    return unavailable(`${f.code}: ${f.message}`);
  // Conflicts (another operation on the VM, a VM being deleted) pass: the call may be repeated later.
  if (f.status === 409) return unavailable(`${f.code ?? 'Conflict'}: ${f.message}`);
  if (f.status !== undefined && f.status >= 400 && f.status < 500 && context.invalidAllowed)
    return new InvalidRequestError(AZURE, 'request', `${f.code ?? f.status}: ${f.message}`);
  const what =
    f.status === undefined ? (f.code ?? 'no response') : `HTTP ${f.status}${f.code ? ` ${f.code}` : ''}`;
  return unavailable(`${what}: ${f.message}`);
}
