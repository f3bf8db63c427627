/**
 * The Provider contract: every cloud the broker buys from, real or simulated, sits behind it.
 *
 * Rules every implementation keeps (the contract suite in `providers/provider.contract.ts` checks them):
 * - Writes are idempotent. `provision` with a key it has seen returns the instances of the first call and creates
 *   nothing; `terminate` of an unknown or already terminated instance is not an error.
 * - Errors are the typed classes of `provider-errors.ts` and nothing else; a failed call changed nothing, except
 *   `ProviderUnavailableError`, after which the caller repeats the call with the same key.
 * - Time comes from the provider's Clock; `atMs` fields are in that clock's ms.
 * - Money is integer micro-USD per instance-hour.
 */
import type { Micros } from '../lib/money.ts';
import type { AgentBootstrap } from './agent-bootstrap.ts';
import type { CapacityType, Offering } from './catalog/offering.ts';

/**
 * An instance's life: `pending` (booting, billed by most clouds) → `running` → `terminating` → `terminated`.
 * `pending` may go straight to `terminated` (boot failure, terminate while booting, spot reclaimed).
 */
export type InstanceState = 'pending' | 'running' | 'terminating' | 'terminated';

/** Why an instance ended: the owner asked, the cloud reclaimed spot capacity, or it failed (boot, host, zone). */
export type TerminationReason = 'requested' | 'preempted' | 'failed';

/** Free-form labels set at provision time; the broker tags what it owns and finds orphans by tag. */
export type Tags = Readonly<Record<string, string>>;

export interface Instance {
  /** Provider-assigned id, unique within the vendor. */
  readonly id: string;
  readonly vendor: string;
  /** The offering it was provisioned from (`vendor/region/instanceType/capacityType`). */
  readonly offeringId: string;
  readonly region: string;
  readonly zone: string;
  readonly instanceType: string;
  readonly capacityType: CapacityType;
  readonly gpu: string;
  readonly gpusPerInstance: number;
  readonly state: InstanceState;
  readonly tags: Tags;
  /** The key of the provision call that created it. */
  readonly idempotencyKey: string;
  /** Price per hour when it was launched. */
  readonly microsPerHour: Micros;
  readonly launchedAtMs: number;
  readonly runningAtMs?: number;
  readonly terminatedAtMs?: number;
  readonly terminationReason?: TerminationReason;
  /** Set once a spot interruption notice was sent: when the cloud will take the instance. */
  readonly interruptAtMs?: number;
}

/** An offering as the provider sells it right now. */
export interface OfferingQuote extends Offering {
  /** Current price per instance-hour (spot prices and list prices change over time). */
  readonly microsPerHour: Micros;
  /** False when the provider knows it cannot deliver now: stock-out, spot capacity gone, region outage. */
  readonly available: boolean;
  /** Zones where it can be had now (empty when unavailable). */
  readonly availableZones: readonly string[];
}

export interface ProvisionRequest {
  /** Offering id from `offerings()`. */
  readonly offeringId: string;
  /** Instances to start, all in one zone, all or nothing. */
  readonly count: number;
  /** Repeating a key returns the first call's instances; a key reused with other parameters is invalid. */
  readonly idempotencyKey: string;
  readonly tags?: Tags;
  /** A zone of the offering's region; the provider picks one with capacity when omitted. */
  readonly zone?: string;
  /**
   * Start `gpubroker agent` on each instance at boot (`agent-bootstrap.ts`): the cloud adapters pass it as the
   * instance's start-up script; the simulated clouds leave it to the broker's local agent host.
   */
  readonly agent?: AgentBootstrap;
}

export interface ListFilter {
  /** Only instances carrying all of these tags. */
  readonly tags?: Tags;
  /** Include instances terminated recently (clouds keep them visible for a while); default false. */
  readonly includeTerminated?: boolean;
}

export type ProviderEvent =
  | {
      readonly kind: 'state-changed';
      readonly atMs: number;
      readonly vendor: string;
      readonly instanceId: string;
      readonly offeringId: string;
      readonly zone: string;
      /** null when the instance was just launched. */
      readonly from: InstanceState | null;
      readonly to: InstanceState;
      readonly reason?: TerminationReason;
    }
  | {
      /** A spot instance will be reclaimed at `terminateAtMs` (AWS gives two minutes, GCP and Azure 30 s). */
      readonly kind: 'interruption-notice';
      readonly atMs: number;
      readonly vendor: string;
      readonly instanceId: string;
      readonly offeringId: string;
      readonly zone: string;
      readonly terminateAtMs: number;
    }
  | {
      /** Something failed outside a call: an instance that did not boot, a host or zone failure. */
      readonly kind: 'failure';
      readonly atMs: number;
      readonly vendor: string;
      readonly instanceId?: string;
      readonly region?: string;
      readonly zone?: string;
      readonly message: string;
    }
  | {
      readonly kind: 'price-changed';
      readonly atMs: number;
      readonly vendor: string;
      readonly offeringId: string;
      readonly microsPerHour: Micros;
    };

/**
 * A limit on the GPUs this account may hold in one region (of one GPU type and capacity type when given), as the
 * cloud publishes it: GCP's regional NVIDIA_*_GPUS and PREEMPTIBLE_NVIDIA_*_GPUS, Azure's per-family cores,
 * AWS's per-family vCPUs (converted to GPUs by the adapter).
 */
export interface ProviderQuota {
  readonly region: string;
  readonly gpu?: string;
  readonly capacityType?: CapacityType;
  readonly maxGpus: number;
}

export interface EventsOptions {
  /** Ends the iteration when aborted. */
  readonly signal?: AbortSignal;
}

export interface Provider {
  /** The vendor name instances and offerings carry (`aws`, `gcp`, `azure`, `local`, …). */
  readonly vendor: string;

  /**
   * Everything this provider sells, with current price and availability. Throws `ThrottledError` or
   * `ProviderUnavailableError` (the caller keeps its last answer and retries later).
   */
  offerings(): Promise<OfferingQuote[]>;

  /**
   * Starts `count` instances of one offering in one zone, all or nothing. They start `pending` and become
   * `running` after the provider's provisioning delay (a `state-changed` event says when).
   * Throws `InvalidRequestError` (unknown offering or zone, count not a positive integer, key reused with other
   * parameters), `InsufficientCapacityError` (no zone has `count` free), `QuotaExceededError`, `ThrottledError`,
   * `ProviderUnavailableError` (outcome unknown: repeat with the same key).
   */
  provision(request: ProvisionRequest): Promise<Instance[]>;

  /**
   * The account's GPU quotas, where the provider can tell (optional: a broker learns the others from
   * `QuotaExceededError`). Throws `ThrottledError` or `ProviderUnavailableError`.
   */
  quotas?(): Promise<ProviderQuota[]>;

  /**
   * Asks for these instances to end. Idempotent: unknown, terminating and terminated ids are not an error.
   * Throws only `ThrottledError` or `ProviderUnavailableError`, after which the caller repeats the call.
   */
  terminate(instanceIds: readonly string[]): Promise<void>;

  /** The provider's inventory, for reconciliation and finding orphans. Throws `ThrottledError`, `ProviderUnavailableError`. */
  list(filter?: ListFilter): Promise<Instance[]>;

  /**
   * State changes, spot interruption notices, failures and price changes from the moment of the call on, in the
   * order they happened. Each call is an independent subscription; ending the iteration (break, abort) ends it.
   */
  events(options?: EventsOptions): AsyncIterable<ProviderEvent>;

  /** Releases the client's own resources (timers, sockets). The cloud's instances are not touched. */
  close(): Promise<void>;
}
