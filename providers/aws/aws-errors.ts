/**
 * EC2's errors as the Provider contract's typed errors. The SDK throws a service exception whose `name` is EC2's
 * error code (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html) and whose `$metadata`
 * has the HTTP status; credential-chain failures and network failures have neither.
 */
import {
  InsufficientCapacityError,
  InvalidRequestError,
  ProviderError,
  ProviderUnavailableError,
  QuotaExceededError,
  ThrottledError,
} from '../provider-errors.ts';

export const VENDOR = 'aws';

/** What a call was doing, so that an error can say which offering, region or quota it concerns. */
export interface ErrorContext {
  readonly region: string;
  readonly offeringId?: string;
  /** vCPUs the call asked for (RunInstances), for QuotaExceededError. */
  readonly requestedVcpus?: number;
  readonly capacityRetryAfterMs?: number;
  /** Backoff to suggest when the call was throttled. */
  readonly throttleRetryAfterMs?: number;
}

const THROTTLED = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException']);
/** Credentials missing, wrong, expired or not allowed: EC2 will not answer this client until someone fixes it. */
const AUTH = new Set([
  'AuthFailure',
  'UnauthorizedOperation',
  'OptInRequired',
  'Blocked',
  'PendingVerification',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'RequestExpired',
  'MissingAuthenticationToken',
  'IncompleteSignature',
]);
export const CAPACITY_CODES = new Set([
  'InsufficientInstanceCapacity',
  'InsufficientCapacity',
  'InsufficientHostCapacity',
]);
const QUOTA = new Set(['VcpuLimitExceeded', 'MaxSpotInstanceCountExceeded', 'InstanceLimitExceeded']);

/** The request field an invalid-parameter code points at; others name `request`. */
const FIELDS: ReadonlyArray<readonly [RegExp, string]> = [
  [/^IdempotentParameterMismatch$/, 'idempotencyKey'],
  [/^InvalidAMIID\./, 'launch.imageId'],
  [/^InvalidSubnet/, 'launch.subnetIds'],
  [/^(InvalidGroup|InvalidSecurityGroupID)\./, 'launch.securityGroupIds'],
  [/^InvalidKeyPair\./, 'launch.keyName'],
  [/^InvalidLaunchTemplate/, 'launch.launchTemplate'],
  [/^InvalidParameterValue$|^InvalidParameterCombination$|^MissingParameter$|^Unsupported$/, 'request'],
];

/** EC2's error code of an SDK error, if EC2 answered (network errors carry `$metadata` too, without a status). */
export function ec2ErrorCode(error: unknown): string | undefined {
  if (!isObject(error) || !isObject(error.$metadata) || typeof error.$metadata.httpStatusCode !== 'number')
    return undefined;
  return typeof error.name === 'string' ? error.name : undefined;
}

/** Any error from an SDK call, as the typed error the contract allows. */
export function toProviderError(error: unknown, context: ErrorContext): ProviderError {
  if (error instanceof ProviderError) return error;
  const { region } = context;
  const fields = isObject(error) ? error : {};
  const message = typeof fields.message === 'string' ? fields.message : String(error);
  const name = typeof fields.name === 'string' ? fields.name : '';

  if (name === 'CredentialsProviderError')
    return new ProviderUnavailableError(
      VENDOR,
      region,
      `no AWS credentials (${message}); set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an IAM role`,
      { cause: error },
    );
  const code = ec2ErrorCode(error);
  if (code === undefined) {
    if (name === 'AbortError')
      return new ProviderUnavailableError(VENDOR, region, 'the call was aborted: the client is closing', {
        cause: error,
      });
    return new ProviderUnavailableError(VENDOR, region, `EC2 in ${region} did not answer: ${message}`, {
      cause: error,
    });
  }

  if (THROTTLED.has(code))
    return new ThrottledError(
      VENDOR,
      context.throttleRetryAfterMs ?? 1_000,
      `${region}: ${code}: ${message}`,
    );
  if (AUTH.has(code))
    return new ProviderUnavailableError(
      VENDOR,
      region,
      `EC2 in ${region} refused the credentials or permissions (${code}: ${message})`,
      { cause: error },
    );
  if (CAPACITY_CODES.has(code))
    return new InsufficientCapacityError(
      VENDOR,
      context.offeringId ?? '',
      context.capacityRetryAfterMs ?? 600_000,
      `${region}: ${code}: ${message}`,
    );
  if (QUOTA.has(code)) {
    const limit = /limit of (\d+)/.exec(message)?.[1];
    return new QuotaExceededError(
      VENDOR,
      `${code === 'VcpuLimitExceeded' ? 'on-demand' : code === 'MaxSpotInstanceCountExceeded' ? 'spot' : 'instance'} vCPUs in ${region}`,
      limit === undefined ? Number.NaN : Number(limit),
      context.requestedVcpus ?? Number.NaN,
      `${region}: ${code}: ${message}`,
    );
  }
  const status = isObject(fields.$metadata) ? fields.$metadata.httpStatusCode : undefined;
  if (typeof status === 'number' && status >= 500)
    return new ProviderUnavailableError(VENDOR, region, `EC2 in ${region} failed (${code}: ${message})`, {
      cause: error,
    });
  const field = FIELDS.find(([pattern]) => pattern.test(code))?.[1] ?? 'request';
  return new InvalidRequestError(VENDOR, field, `${code}: ${message}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
