/**
 * The Compute Engine calls the adapter makes, through the official SDK (`@google-cloud/compute`) in its REST
 * transport, each retried with backoff while throttled. Failures come out as `GceCallError` (a classified
 * `GceFault`) or, for throttling that outlasted the retries, as ThrottledError; the provider decides what a fault
 * means for its caller.
 */
import {
  AcceleratorTypesClient,
  InstancesClient,
  type protos,
  RegionsClient,
  ZoneOperationsClient,
} from '@google-cloud/compute';
import { BackoffExhausted, type BackoffPolicy, withBackoff } from '../../lib/backoff.ts';
import type { Clock } from '../../lib/clock.ts';
import type { Random } from '../../lib/random.ts';
import { ThrottledError } from '../provider-errors.ts';
import { faultFromError, type GceFault } from './gce-fault.ts';

type IInstance = protos.google.cloud.compute.v1.IInstance;
type IOperation = protos.google.cloud.compute.v1.IOperation;
type IInstanceProperties = protos.google.cloud.compute.v1.IInstanceProperties;

/** The SDK's client options (credentials, endpoint, transport), as its constructors take them. */
export type ComputeClientOptions = NonNullable<ConstructorParameters<typeof InstancesClient>[0]>;

export const VENDOR = 'gcp';

/** A Compute Engine call failed; `fault` says how. */
export class GceCallError extends Error {
  constructor(readonly fault: GceFault) {
    super(fault.message);
  }
}

export interface GceApiOptions {
  readonly project: string;
  readonly clock: Clock;
  readonly backoff: BackoffPolicy;
  /** The backoff's jitter. */
  readonly random: Random;
  readonly client: ComputeClientOptions;
}

/** No SDK-level retries: the SDK would retry on its own timers, outside the Clock and the backoff policy. */
const CALL = { retry: null } as const;
/** The `…Async` listings page by themselves (following `nextPageToken`) and warn unless told so. */
const LISTING = { ...CALL, autoPaginate: false } as const;

export class GceApi {
  readonly project: string;
  private readonly instances: InstancesClient;
  private readonly operations: ZoneOperationsClient;
  private readonly acceleratorTypes: AcceleratorTypesClient;
  private readonly regions: RegionsClient;

  constructor(private readonly options: GceApiOptions) {
    this.project = options.project;
    this.instances = new InstancesClient({ ...options.client });
    // One credential for all three clients, so a token is fetched once.
    const shared = options.client.authClient
      ? options.client
      : { ...options.client, auth: this.instances.auth };
    this.operations = new ZoneOperationsClient({ ...shared });
    this.acceleratorTypes = new AcceleratorTypesClient({ ...shared });
    this.regions = new RegionsClient({ ...shared });
  }

  /** Obtains an access token the way every call will: the credentials check at start. */
  async checkCredentials(): Promise<void> {
    const auth = this.instances.auth as { getAccessToken?: () => Promise<unknown> };
    try {
      await auth.getAccessToken?.();
    } catch (error) {
      throw new GceCallError({ ...faultFromError(error), kind: 'auth' });
    }
  }

  /** The project the credentials name, when they name one (service-account keys do). */
  async projectId(): Promise<string | undefined> {
    try {
      return (await this.instances.getProjectId()) || undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Creates `names` in `zone` from one template, all or none: `minCount` = `count`, so GCE deletes what it made
   * when it cannot make them all (https://cloud.google.com/compute/docs/reference/rest/v1/instances/bulkInsert).
   * Returns the operation as GCE first reports it.
   */
  async bulkInsert(
    zone: string,
    requestId: string,
    names: readonly string[],
    properties: IInstanceProperties,
  ): Promise<IOperation> {
    return this.call(async () => {
      const [lro] = await this.instances.bulkInsert(
        {
          project: this.project,
          zone,
          requestId,
          bulkInsertInstanceResourceResource: {
            count: names.length,
            minCount: names.length,
            perInstanceProperties: Object.fromEntries(names.map((name) => [name, {}])),
            instanceProperties: properties,
          },
        },
        CALL,
      );
      return latestResponse(lro);
    });
  }

  /** One instance (https://cloud.google.com/compute/docs/reference/rest/v1/instances/get). */
  async getInstance(zone: string, name: string): Promise<IInstance> {
    return this.call(async () => {
      const [instance] = await this.instances.get({ project: this.project, zone, instance: name }, CALL);
      return instance;
    });
  }

  /** Deletes an instance (https://cloud.google.com/compute/docs/reference/rest/v1/instances/delete). */
  async deleteInstance(zone: string, name: string, requestId: string): Promise<IOperation> {
    return this.call(async () => {
      const [lro] = await this.instances.delete(
        { project: this.project, zone, instance: name, requestId },
        CALL,
      );
      return latestResponse(lro);
    });
  }

  /**
   * One round of zoneOperations.wait: returns when the operation is DONE or GCE's own deadline (about two
   * minutes) passed, whichever is first (https://cloud.google.com/compute/docs/reference/rest/v1/zoneOperations/wait).
   */
  async waitOperation(zone: string, operation: string): Promise<IOperation> {
    return this.call(async () => {
      const [op] = await this.operations.wait({ project: this.project, zone, operation }, CALL);
      return op;
    });
  }

  /**
   * Every instance matching `filter` in every zone, following `nextPageToken` to the last page
   * (https://cloud.google.com/compute/docs/reference/rest/v1/instances/aggregatedList). A throttled page restarts
   * the listing, which is a read and safe to repeat.
   */
  async listInstances(filter: string): Promise<IInstance[]> {
    return this.call(async () => {
      const found: IInstance[] = [];
      for await (const [, scoped] of this.instances.aggregatedListAsync(
        { project: this.project, filter, maxResults: 500 },
        LISTING,
      ))
        found.push(...(scoped.instances ?? []));
      return found;
    });
  }

  /**
   * Recent operations of one type in a zone, e.g. `compute.instances.preempted`, which GCE records when it
   * reclaims a spot VM (https://cloud.google.com/compute/docs/reference/rest/v1/zoneOperations/list).
   */
  async listOperations(zone: string, operationType: string): Promise<IOperation[]> {
    return this.call(async () => {
      const found: IOperation[] = [];
      for await (const op of this.operations.listAsync(
        { project: this.project, zone, filter: `operationType = "${operationType}"`, maxResults: 500 },
        LISTING,
      ))
        found.push(op);
      return found;
    });
  }

  /**
   * Accelerator types offered per zone (https://cloud.google.com/compute/docs/reference/rest/v1/acceleratorTypes/aggregatedList):
   * zone name → accelerator type names. Zones without any are listed with none.
   */
  async acceleratorZones(): Promise<Map<string, Set<string>>> {
    return this.call(async () => {
      const zones = new Map<string, Set<string>>();
      for await (const [scope, scoped] of this.acceleratorTypes.aggregatedListAsync(
        { project: this.project, maxResults: 500 },
        LISTING,
      )) {
        if (!scope.startsWith('zones/')) continue;
        const names = zones.get(scope.slice('zones/'.length)) ?? new Set<string>();
        for (const type of scoped.acceleratorTypes ?? []) if (type.name) names.add(type.name);
        zones.set(scope.slice('zones/'.length), names);
      }
      return zones;
    });
  }

  /** A region's quotas with their limit and usage (https://cloud.google.com/compute/docs/reference/rest/v1/regions/get). */
  async regionQuotas(region: string): Promise<{ metric: string; limit: number; usage: number }[]> {
    return this.call(async () => {
      const [found] = await this.regions.get({ project: this.project, region }, CALL);
      return (found.quotas ?? []).flatMap((q) =>
        q.metric
          ? [{ metric: String(q.metric), limit: Number(q.limit ?? 0), usage: Number(q.usage ?? 0) }]
          : [],
      );
    });
  }

  async close(): Promise<void> {
    await Promise.allSettled([
      this.instances.close(),
      this.operations.close(),
      this.acceleratorTypes.close(),
      this.regions.close(),
    ]);
  }

  private async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await withBackoff(
        {
          clock: this.options.clock,
          policy: this.options.backoff,
          jitter: this.options.random,
          retryable: (error) => faultFromError(error).kind === 'throttled',
        },
        run,
      );
    } catch (error) {
      if (error instanceof BackoffExhausted)
        throw new ThrottledError(
          VENDOR,
          error.retryAfterMs,
          `Compute Engine kept throttling after ${error.attempts} tries: ${faultFromError(error.last).message}`,
          true,
        );
      throw new GceCallError(faultFromError(error));
    }
  }
}

/** The SDK wraps a write's Operation resource as `latestResponse` of its long-running-operation object. */
function latestResponse(lro: unknown): IOperation {
  return ((lro as { latestResponse?: IOperation } | undefined)?.latestResponse ?? {}) as IOperation;
}
