/**
 * Azure as a Provider, on the official SDK (`@azure/arm-compute`, credentials from `@azure/identity`): one VM per
 * instance in a configured resource group, Spot VMs for spot offerings, ownership and idempotency kept in tags.
 *
 * - provision: VM names come from the idempotency key (`vm-spec.ts`), so a repeated call targets the same VMs (ARM PUT
 *   is idempotent by name) and finds them after a restart. The `count` VMs are created in one zone and awaited as
 *   long-running operations; if any fails, all are deleted before the error is thrown (all or nothing). Without a
 *   requested zone, a zone that ran out of capacity is skipped for the next one.
 * - list and events: the resource group's VMs carrying our `gpubroker:broker` tag, read page by page; the power state
 *   comes from each VM's instance view until it is seen running. Every read diffs the states it sees against the last
 *   ones and publishes `state-changed` events; a poll on the Clock does the same in the background. Azure forgets a
 *   deleted VM at once, so terminated instances are remembered here for `terminatedRetentionMs`.
 * - Spot eviction (policy Delete) shows as the VM going away: terminated, reason `preempted`. Azure's 30-second
 *   eviction notice (Scheduled Events, `Preempt`) is only visible from inside the VM, so no `interruption-notice` is
 *   published. https://learn.microsoft.com/en-us/azure/virtual-machines/linux/scheduled-events
 * - prices: on-demand and spot from the Retail Prices API (retail-prices.ts), read again every `priceRefreshMs`,
 *   the catalog's where it has none; changes are published as `price-changed`.
 */
import { ComputeManagementClient, restorePoller, type VirtualMachine } from '@azure/arm-compute';
import type { TokenCredential } from '@azure/identity';
import type { BackoffPolicy } from '../../lib/backoff.ts';
import { type Clock, RealClock, type TimerHandle } from '../../lib/clock.ts';
import type { Micros } from '../../lib/money.ts';
import { startupScriptFor } from '../agent-bootstrap.ts';
import { loadCatalog } from '../catalog/load-catalog.ts';
import type { Offering } from '../catalog/offering.ts';
import { EventHub } from '../event-hub.ts';
import { instanceSnapshot, stateChangedEvent } from '../instance-snapshot.ts';
import { DEFAULT_PRICE_REFRESH_MS, ListPrices } from '../list-prices.ts';
import { PriceChanges } from '../price-changes.ts';
import type {
  EventsOptions,
  Instance,
  InstanceState,
  ListFilter,
  OfferingQuote,
  Provider,
  ProviderEvent,
  ProvisionRequest,
  TerminationReason,
} from '../provider.ts';
import {
  InsufficientCapacityError,
  InvalidRequestError,
  type ProviderError,
  ProviderUnavailableError,
  QuotaExceededError,
  ThrottledError,
} from '../provider-errors.ts';
import { ArmCalls, type Outcome } from './arm-calls.ts';
import { AZURE, armFailure, toProviderError } from './azure-errors.ts';
import { type AzureProviderOptions, DEFAULT_IMAGE, validateAzureOptions } from './azure-options.ts';
import { RETAIL_PRICES_ENDPOINT, readRetailPrices } from './retail-prices.ts';
import { type SizePlacement, sizePlacements } from './sku-availability.ts';
import {
  azureZoneOf,
  BROKER_TAG,
  KEY_TAG,
  MAX_USER_TAGS,
  OFFERING_TAG,
  REQUEST_TAG,
  requestFingerprint,
  tagProblem,
  tagValue,
  userTags,
  type VmSettings,
  vmBody,
  vmNameOf,
  vmNames,
  vmResourceId,
  zoneId,
} from './vm-spec.ts';
import { isForward, needsInstanceView, type ObservedState, observedState } from './vm-state.ts';

export { AZURE } from './azure-errors.ts';
export type { AzureProviderOptions } from './azure-options.ts';

/** The most VMs one provision call may ask for. */
const MAX_COUNT = 1_000;
/** Longest wait for one page of the Retail Prices API. */
const PRICES_TIMEOUT_MS = 30_000;

/**
 * Creates the Azure provider: validates the options (ValidationError naming the option), then makes one call with the
 * credential to check it can read the resource group's VMs (ProviderUnavailableError naming the cause otherwise).
 */
export async function createAzureProvider(options: AzureProviderOptions): Promise<AzureProvider> {
  const catalog = (options.catalog ?? loadCatalog()).filter(
    (o) => o.vendor === AZURE && o.capacityType !== 'reserved',
  );
  validateAzureOptions(options, new Set(catalog.map((o) => o.region)));
  const credential = options.credential ?? (await defaultCredential());
  const client = new ComputeManagementClient(credential, options.subscriptionId, {
    ...(options.endpoint === undefined
      ? {}
      : {
          endpoint: options.endpoint,
          credentials: { scopes: [`${new URL(options.endpoint).origin}/.default`] },
        }),
    ...(options.tlsCa === undefined ? {} : { tlsOptions: { ca: options.tlsCa } }),
    // Our backoff, on the Clock, is the only retry: the SDK's would hide throttling and wait on its own timers.
    retryOptions: { maxRetries: 0 },
  });
  const provider = new AzureProvider(client, options, catalog);
  await provider.checkAccess();
  provider.startPolling();
  return provider;
}

/** The standard chain (environment, workload identity, managed identity, developer tools), loaded only when used. */
async function defaultCredential(): Promise<TokenCredential> {
  try {
    const { DefaultAzureCredential } = await import('@azure/identity');
    return new DefaultAzureCredential();
  } catch (error) {
    throw new ProviderUnavailableError(
      AZURE,
      undefined,
      `no usable Azure credentials: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/** What the adapter knows of one of its VMs. */
interface Tracked {
  readonly id: string;
  readonly name: string;
  readonly offering: Offering;
  readonly zone: string;
  /** All tags of the VM (ours included), for filtering. */
  readonly cloudTags: Readonly<Record<string, string>>;
  readonly key: string;
  readonly microsPerHour: Micros;
  readonly launchedAtMs: number;
  /** The refresh epoch when it was recorded: a listing that started earlier cannot say it is gone. */
  readonly epoch: number;
  state: InstanceState;
  runningAtMs?: number;
  terminatedAtMs?: number;
  terminationReason?: TerminationReason;
  /** Still a resource in Azure (a stopped or failed VM is terminated but stays until deleted). */
  inCloud: boolean;
}

export class AzureProvider implements Provider {
  readonly vendor = AZURE;
  private readonly clock: Clock;
  private readonly calls: ArmCalls;
  private readonly hub = new EventHub<ProviderEvent>();
  private readonly subscriptionId: string;
  private readonly resourceGroup: string;
  private readonly brokerId: string;
  private readonly vmSettings: VmSettings;
  /** Every Azure offering of the catalog, by id (VMs of regions no longer configured still map back). */
  private readonly catalog = new Map<string, Offering>();
  private readonly sold: readonly Offering[];
  private readonly regions: readonly string[];
  private readonly pollIntervalMs: number;
  private readonly operationPollIntervalMs: number;
  private readonly provisionTimeoutMs: number;
  private readonly capacityRetryAfterMs: number;
  private readonly terminatedRetentionMs: number;
  private readonly skuCacheMs: number;
  /** By lower-case resource id (ARM ids compare case-insensitively). */
  private readonly tracked = new Map<string, Tracked>();
  private readonly keys = new Map<string, { fingerprint: string; ids: string[]; first: Instance[] }>();
  private readonly inflight = new Map<string, Promise<Instance[]>>();
  /** Keys of provision calls under way: their VMs are not reported before the call answers. */
  private readonly provisioning = new Set<string>();
  /** Lower-case ids we asked Azure to delete (a VM that goes away after that was terminated on request). */
  private readonly deleteRequested = new Set<string>();
  private readonly skus = new Map<
    string,
    { readonly atMs: number; readonly sizes: Map<string, SizePlacement> }
  >();
  /** `offeringId@zone` → until when a capacity failure keeps it unavailable. */
  private readonly capacityBlocks = new Map<string, number>();
  private readonly listPrices: ListPrices;
  private readonly priceChanges = new PriceChanges(AZURE);
  /** Aborted on close: ends a price read under way. */
  private readonly stopping = new AbortController();
  private refreshChain: Promise<void> = Promise.resolve();
  private epoch = 0;
  private timer: TimerHandle | undefined;
  private closed = false;

  constructor(
    private readonly client: ComputeManagementClient,
    options: AzureProviderOptions,
    catalog: readonly Offering[],
  ) {
    this.clock = options.clock ?? new RealClock();
    this.subscriptionId = options.subscriptionId;
    this.resourceGroup = options.resourceGroup;
    this.brokerId = options.brokerId ?? 'gpubroker';
    this.regions = Object.keys(options.regions);
    for (const o of catalog) this.catalog.set(o.id, o);
    this.sold = catalog.filter((o) => this.regions.includes(o.region));
    this.vmSettings = {
      subnetIds: Object.fromEntries(
        Object.entries(options.regions).map(([r, { subnetId }]) => [r, subnetId]),
      ),
      adminUsername: options.adminUsername ?? 'gpubroker',
      sshPublicKey: options.sshPublicKey,
      image: options.image ?? DEFAULT_IMAGE,
      ...(options.osDiskSizeGb === undefined ? {} : { osDiskSizeGb: options.osDiskSizeGb }),
      ...(options.userData === undefined ? {} : { userData: options.userData }),
    };
    this.pollIntervalMs = options.pollIntervalMs ?? 5_000;
    this.operationPollIntervalMs = options.operationPollIntervalMs ?? 2_000;
    this.provisionTimeoutMs = options.provisionTimeoutMs ?? 20 * 60_000;
    this.capacityRetryAfterMs = options.capacityRetryAfterMs ?? 10 * 60_000;
    this.terminatedRetentionMs = options.terminatedRetentionMs ?? 60 * 60_000;
    this.skuCacheMs = options.skuCacheMs ?? 10 * 60_000;
    const throttle: BackoffPolicy = {
      maxRetries: options.throttle?.maxRetries ?? 4,
      baseDelayMs: options.throttle?.baseDelayMs ?? 500,
      maxDelayMs: options.throttle?.maxDelayMs ?? 30_000,
    };
    this.calls = new ArmCalls(this.clock, throttle);
    const pricesEndpoint =
      options.pricesEndpoint ?? (options.endpoint === undefined ? RETAIL_PRICES_ENDPOINT : undefined);
    this.listPrices = new ListPrices({
      vendor: AZURE,
      clock: this.clock,
      offerings: this.sold,
      read:
        pricesEndpoint === undefined
          ? undefined
          : () =>
              readRetailPrices(this.sold, {
                endpoint: pricesEndpoint,
                clock: this.clock,
                timeoutMs: PRICES_TIMEOUT_MS,
                signal: this.stopping.signal,
              }),
      off: `the ARM endpoint is ${options.endpoint} and no pricesEndpoint is set`,
      refreshMs: options.priceRefreshMs ?? DEFAULT_PRICE_REFRESH_MS,
      log: options.log,
    });
  }

  /** One authenticated call: lists the first page of the resource group's VMs. */
  async checkAccess(): Promise<void> {
    try {
      await this.calls.retrying(() => this.client.virtualMachines.list(this.resourceGroup).byPage().next());
    } catch (error) {
      const e = this.fail(error, false);
      throw new ProviderUnavailableError(
        AZURE,
        undefined,
        `cannot use resource group ${this.resourceGroup} of subscription ${this.subscriptionId}: ${e.message.replace(/^azure: /, '')}`,
        { cause: error },
      );
    }
  }

  /** Starts the background inventory poll that turns state changes into events. */
  startPolling(): void {
    if (this.closed || this.timer) return;
    const tick = () => {
      this.timer = undefined;
      if (this.closed) return;
      // A failed poll is retried at the next tick; calls made meanwhile report their own errors.
      void this.refresh()
        .catch(() => undefined)
        .finally(() => {
          if (!this.closed) this.timer = this.clock.setTimer(this.clock.now() + this.pollIntervalMs, tick);
        });
    };
    this.timer = this.clock.setTimer(this.clock.now() + this.pollIntervalMs, tick);
  }

  async offerings(): Promise<OfferingQuote[]> {
    this.assertOpen();
    const prices = this.listPrices.refresh();
    const quotes: OfferingQuote[] = [];
    try {
      for (const region of this.regions) {
        const sizes = await this.sizesIn(region);
        for (const o of this.sold) {
          if (o.region !== region) continue;
          const availableZones = this.openZones(o, sizes).filter((z) => !this.blocked(o.id, z));
          quotes.push({ ...o, available: availableZones.length > 0, availableZones });
        }
      }
    } catch (error) {
      throw this.fail(error, false);
    }
    await prices;
    const priced = quotes.map((q) => ({ ...q, microsPerHour: this.listPrices.priceOf(q) }));
    for (const event of this.priceChanges.note(priced, this.clock.now())) this.hub.publish(event);
    return priced;
  }

  async provision(request: ProvisionRequest): Promise<Instance[]> {
    this.assertOpen();
    const offering = this.validate(request);
    // A bad agent bootstrap fails here, before anything is asked of Azure.
    const startupScript = startupScriptFor(AZURE, request.agent);
    const fingerprint = requestFingerprint(
      request.offeringId,
      request.count,
      request.zone,
      request.tags,
      startupScript,
    );
    const key = request.idempotencyKey;
    for (let running = this.inflight.get(key); running; running = this.inflight.get(key))
      await running.catch(() => undefined);
    const known = this.keys.get(key);
    if (known) {
      if (known.fingerprint !== fingerprint) throw reusedKey(key);
      return known.ids.map((id, i) => {
        const t = this.tracked.get(id.toLowerCase());
        return t ? this.snapshot(t) : (known.first[i] as Instance);
      });
    }
    const run = this.provisionNew(request, offering, fingerprint, startupScript);
    this.inflight.set(key, run);
    try {
      return await run;
    } finally {
      this.inflight.delete(key);
    }
  }

  async terminate(instanceIds: readonly string[]): Promise<void> {
    this.assertOpen();
    const targets: { name: string; lower: string }[] = [];
    for (const id of new Set(instanceIds)) {
      const name = vmNameOf(id, this.subscriptionId, this.resourceGroup);
      if (name === undefined) continue;
      const lower = this.idOf(name).toLowerCase();
      const t = this.tracked.get(lower);
      if (t && (t.state === 'terminating' || (t.state === 'terminated' && !t.inCloud))) continue;
      targets.push({ name, lower });
    }
    try {
      await Promise.all(
        targets.map(async ({ name, lower }) => {
          // An id we have not seen is only deleted if the VM is one of ours.
          if (!this.tracked.has(lower)) {
            const vm = await this.getVm(name);
            if (!vm || tagValue(vm.tags, BROKER_TAG) !== this.brokerId) return;
          }
          await this.calls.retrying(async () => {
            await this.client.virtualMachines.delete(this.resourceGroup, name).submitted();
          });
          this.deleteRequested.add(lower);
          const t = this.tracked.get(lower);
          if (t) this.advance(t, 'terminating', 'requested');
        }),
      );
    } catch (error) {
      throw this.fail(error, false);
    }
  }

  async list(filter: ListFilter = {}): Promise<Instance[]> {
    this.assertOpen();
    try {
      await this.refresh();
    } catch (error) {
      throw this.fail(error, false);
    }
    const wanted = Object.entries(filter.tags ?? {});
    return [...this.tracked.values()]
      .filter((t) => filter.includeTerminated === true || t.state !== 'terminated')
      .filter((t) => wanted.every(([k, v]) => tagValue(t.cloudTags, k) === v))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((t) => this.snapshot(t));
  }

  events(options: EventsOptions = {}): AsyncIterable<ProviderEvent> {
    return this.hub.iterate(options.signal);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.stopping.abort();
    await this.refreshChain.catch(() => undefined);
    this.hub.close();
  }

  // ---- provision ----------------------------------------------------------------------------------------------

  private validate(request: ProvisionRequest): Offering {
    if (typeof request !== 'object' || request === null)
      throw new InvalidRequestError(AZURE, 'request', 'must be an object');
    const offering = this.sold.find((o) => o.id === request.offeringId);
    if (!offering)
      throw new InvalidRequestError(
        AZURE,
        'offeringId',
        `"${request.offeringId}" is not sold in the configured regions (${this.regions.join(', ')})`,
      );
    if (!Number.isSafeInteger(request.count) || request.count < 1 || request.count > MAX_COUNT)
      throw new InvalidRequestError(
        AZURE,
        'count',
        `must be an integer from 1 to ${MAX_COUNT}, got ${request.count}`,
      );
    if (typeof request.idempotencyKey !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(request.idempotencyKey))
      throw new InvalidRequestError(AZURE, 'idempotencyKey', 'must be 1–256 printable ASCII characters');
    const entries = Object.entries(request.tags ?? {});
    if (entries.length > MAX_USER_TAGS)
      throw new InvalidRequestError(
        AZURE,
        'tags',
        `at most ${MAX_USER_TAGS} tags (Azure allows 50, 4 are ours)`,
      );
    const seen = new Set<string>();
    for (const [k, v] of entries) {
      const problem = tagProblem(k, v);
      if (problem) throw new InvalidRequestError(AZURE, `tags.${k}`, problem);
      if (seen.has(k.toLowerCase()))
        throw new InvalidRequestError(
          AZURE,
          `tags.${k}`,
          'Azure tag names are case-insensitive: this one is repeated',
        );
      seen.add(k.toLowerCase());
    }
    if (request.zone !== undefined && typeof request.zone !== 'string')
      throw new InvalidRequestError(AZURE, 'zone', 'must be a string');
    return offering;
  }

  private async provisionNew(
    request: ProvisionRequest,
    offering: Offering,
    fingerprint: string,
    startupScript: string | undefined,
  ): Promise<Instance[]> {
    const key = request.idempotencyKey;
    const region = offering.region;
    this.provisioning.add(key);
    try {
      const sizes = await this.sizesIn(region);
      const zones = this.allZones(offering, sizes);
      if (request.zone !== undefined && !zones.includes(request.zone))
        throw new InvalidRequestError(
          AZURE,
          'zone',
          `"${request.zone}" is not a zone of ${region} with ${offering.instanceType} (${zones.join(', ') || 'none'})`,
        );
      const names = vmNames(this.brokerId, key, request.count);
      const existing = (await Promise.all(names.map((name) => this.getVm(name)))).filter(
        (vm): vm is VirtualMachine => vm !== undefined,
      );
      for (const vm of existing) if (tagValue(vm.tags, REQUEST_TAG) !== fingerprint) throw reusedKey(key);

      let candidates: string[];
      if (existing.length > 0) candidates = [zoneId(region, existing[0]?.zones?.[0])];
      else if (request.zone !== undefined) candidates = [request.zone];
      else candidates = this.openZones(offering, sizes).filter((z) => !this.blocked(offering.id, z));
      if (candidates.length === 0)
        throw new InsufficientCapacityError(
          AZURE,
          offering.id,
          this.capacityRetryAfterMs,
          `${offering.instanceType} (${offering.capacityType}) cannot be had in ${region} now`,
        );

      const tags: Record<string, string> = {
        ...(request.tags ?? {}),
        [BROKER_TAG]: this.brokerId,
        [OFFERING_TAG]: offering.id,
        [KEY_TAG]: key,
        [REQUEST_TAG]: fingerprint,
      };
      let capacityError: ProviderError | undefined;
      for (const zone of candidates) {
        try {
          const vms = await this.createAll(offering, zone, names, tags, startupScript);
          return this.register(key, fingerprint, offering, zone, names, vms, tags);
        } catch (error) {
          const e = this.fail(error, true, offering);
          if (!(e instanceof InsufficientCapacityError)) throw e;
          this.capacityBlocks.set(`${offering.id}@${zone}`, this.clock.now() + this.capacityRetryAfterMs);
          capacityError = e;
          // Another zone only when the caller left the choice to us and nothing of this key exists anywhere.
          if (existing.length > 0 || request.zone !== undefined) throw e;
        }
      }
      throw capacityError;
    } catch (error) {
      throw this.fail(error, true, offering);
    } finally {
      this.provisioning.delete(key);
    }
  }

  /**
   * Creates (or re-PUTs) every VM of the call in one zone and waits for each operation. If any fails, all are deleted
   * and awaited before the most telling error is thrown; if an outcome cannot be known (timeout, outage), nothing is
   * deleted and the caller is told to repeat with the same key.
   */
  private async createAll(
    offering: Offering,
    zone: string,
    names: readonly string[],
    tags: Record<string, string>,
    startupScript: string | undefined,
  ): Promise<(VirtualMachine | undefined)[]> {
    const azureZone = azureZoneOf(offering.region, zone);
    const deadline = this.clock.now() + this.provisionTimeoutMs;
    const outcomes = await Promise.all(
      names.map((name) =>
        this.calls.settle(
          () =>
            this.client.virtualMachines.createOrUpdate(
              this.resourceGroup,
              name,
              vmBody(offering, name, azureZone, tags, this.vmSettings, startupScript),
            ),
          (state) => restorePoller(this.client, state, this.client.virtualMachines.createOrUpdate),
          this.operationPollIntervalMs,
          deadline,
        ),
      ),
    );
    const failures = outcomes.filter((o): o is Extract<Outcome<VirtualMachine>, { ok: false }> => !o.ok);
    if (failures.length === 0) return outcomes.map((o) => (o.ok ? o.value : undefined));
    const unknown = failures.find((f) => f.accepted && !f.known);
    if (unknown)
      throw new ProviderUnavailableError(
        AZURE,
        offering.region,
        `outcome of creating ${names.length} VM(s) is unknown (${armFailure(unknown.error, this.clock.now()).message}); repeat the call with the same key`,
        { cause: unknown.error },
      );
    await this.rollback(offering.region, names);
    throw mostTelling(failures.map((f) => this.fail(f.error, true, offering)));
  }

  private async rollback(region: string, names: readonly string[]): Promise<void> {
    const deadline = this.clock.now() + this.provisionTimeoutMs;
    const outcomes = await Promise.all(
      names.map((name) =>
        this.calls.settle(
          () => this.client.virtualMachines.delete(this.resourceGroup, name),
          (state) => restorePoller(this.client, state, this.client.virtualMachines.delete),
          this.operationPollIntervalMs,
          deadline,
        ),
      ),
    );
    const failed = outcomes.find((o) => !o.ok);
    if (failed && !failed.ok)
      throw new ProviderUnavailableError(
        AZURE,
        region,
        `a provision failed and its VMs could not all be deleted (${armFailure(failed.error, this.clock.now()).message}); repeat the call with the same key`,
        { cause: failed.error },
      );
  }

  private register(
    key: string,
    fingerprint: string,
    offering: Offering,
    zone: string,
    names: readonly string[],
    vms: readonly (VirtualMachine | undefined)[],
    tags: Readonly<Record<string, string>>,
  ): Instance[] {
    const now = this.clock.now();
    const fresh: Tracked[] = [];
    const instances = names.map((name, i) => {
      const lower = this.idOf(name).toLowerCase();
      let t = this.tracked.get(lower);
      if (!t) {
        t = {
          id: this.idOf(name),
          name,
          offering,
          zone,
          cloudTags: { ...(vms[i]?.tags ?? tags) },
          key,
          microsPerHour: this.listPrices.priceOf(offering),
          launchedAtMs: now,
          epoch: this.epoch,
          state: 'pending',
          inCloud: true,
        };
        this.tracked.set(lower, t);
        fresh.push(t);
      }
      return this.snapshot(t);
    });
    this.keys.set(key, { fingerprint, ids: instances.map((i) => i.id), first: instances });
    // The call's effects are recorded before anyone hears of them.
    for (const t of fresh) this.hub.publish(stateChangedEvent(now, t.offering, t, null, 'pending'));
    return instances;
  }

  // ---- inventory ----------------------------------------------------------------------------------------------

  /** Reads the inventory and publishes what changed; calls run one after another so diffs never interleave. */
  private refresh(): Promise<void> {
    const run = this.refreshChain.then(() => this.refreshOnce());
    this.refreshChain = run.catch(() => undefined);
    return run;
  }

  private async refreshOnce(): Promise<void> {
    if (this.closed) return;
    const epoch = ++this.epoch;
    const vms = await this.calls.collect(() => this.client.virtualMachines.list(this.resourceGroup));
    const ours = vms.filter((vm) => {
      if (!vm.name || tagValue(vm.tags, BROKER_TAG) !== this.brokerId) return false;
      const key = tagValue(vm.tags, KEY_TAG);
      return key !== undefined && !this.provisioning.has(key);
    });
    const views = await Promise.all(
      ours.map(async (vm): Promise<ObservedState | undefined> => {
        const t = this.tracked.get(this.idOf(vm.name as string).toLowerCase());
        const settled = t !== undefined && (t.state === 'running' || t.state === 'terminated');
        if (settled || !needsInstanceView(vm.provisioningState)) {
          return settled && t && vm.provisioningState !== 'Deleting'
            ? { state: t.state }
            : observedState(vm.provisioningState, undefined);
        }
        try {
          const view = await this.calls.retrying(() =>
            this.client.virtualMachines.instanceView(this.resourceGroup, vm.name as string),
          );
          return observedState(vm.provisioningState, view);
        } catch (error) {
          // Deleted between the list and this call: the next listing tells.
          if (armFailure(error, this.clock.now()).status === 404) return undefined;
          throw error;
        }
      }),
    );
    const seen = new Set<string>();
    ours.forEach((vm, i) => {
      const lower = this.idOf(vm.name as string).toLowerCase();
      seen.add(lower);
      const observed = views[i];
      if (observed) this.observe(vm, lower, observed, epoch);
    });
    const now = this.clock.now();
    for (const [lower, t] of this.tracked) {
      if (!seen.has(lower) && t.epoch < epoch && t.inCloud && !this.provisioning.has(t.key)) {
        t.inCloud = false;
        this.advance(t, 'terminated', this.endReason(t, undefined));
      }
      if (
        !t.inCloud &&
        t.state === 'terminated' &&
        (t.terminatedAtMs ?? now) < now - this.terminatedRetentionMs
      )
        this.tracked.delete(lower);
    }
  }

  private observe(vm: VirtualMachine, lower: string, observed: ObservedState, epoch: number): void {
    const known = this.tracked.get(lower);
    if (known) {
      known.inCloud = true;
      this.advance(known, observed.state, this.endReason(known, observed.failure), observed.failure);
      return;
    }
    const offering = this.catalog.get(tagValue(vm.tags, OFFERING_TAG) ?? '');
    if (!offering) return;
    const now = this.clock.now();
    const t: Tracked = {
      id: this.idOf(vm.name as string),
      name: vm.name as string,
      offering,
      zone: zoneId(offering.region, vm.zones?.[0]),
      cloudTags: { ...(vm.tags ?? {}) },
      key: tagValue(vm.tags, KEY_TAG) ?? '',
      microsPerHour: this.listPrices.priceOf(offering),
      launchedAtMs: Math.min(now, vm.timeCreated?.getTime() ?? now),
      epoch,
      state: observed.state,
      inCloud: true,
    };
    if (observed.state === 'running') t.runningAtMs = now;
    if (observed.state === 'terminated') {
      t.terminatedAtMs = now;
      t.terminationReason = this.endReason(t, observed.failure);
    }
    this.tracked.set(lower, t);
    this.hub.publish(stateChangedEvent(now, offering, t, null, t.state, t.terminationReason));
    if (observed.failure) this.publishFailure(t, observed.failure);
  }

  /** Moves an instance forward (never back: a listing read before a delete must not undo it) and says so. */
  private advance(t: Tracked, to: InstanceState, reason: TerminationReason, failure?: string): void {
    if (!isForward(t.state, to)) return;
    const from = t.state;
    const now = this.clock.now();
    t.state = to;
    if (to === 'running') t.runningAtMs = now;
    if (to === 'terminated') {
      t.terminatedAtMs = now;
      t.terminationReason = reason;
    }
    this.hub.publish(
      stateChangedEvent(now, t.offering, t, from, to, to === 'terminated' ? reason : undefined),
    );
    if (to === 'terminated' && failure) this.publishFailure(t, failure);
  }

  private endReason(t: Tracked, failure: string | undefined): TerminationReason {
    if (this.deleteRequested.has(t.id.toLowerCase())) return 'requested';
    if (failure) return 'failed';
    return t.offering.capacityType === 'spot' ? 'preempted' : 'failed';
  }

  private publishFailure(t: Tracked, message: string): void {
    this.hub.publish({
      kind: 'failure',
      atMs: this.clock.now(),
      vendor: AZURE,
      instanceId: t.id,
      region: t.offering.region,
      zone: t.zone,
      message,
    });
  }

  // ---- helpers ------------------------------------------------------------------------------------------------

  private async getVm(name: string): Promise<VirtualMachine | undefined> {
    try {
      return await this.calls.retrying(() => this.client.virtualMachines.get(this.resourceGroup, name));
    } catch (error) {
      if (armFailure(error, this.clock.now()).status === 404) return undefined;
      throw error;
    }
  }

  private async sizesIn(region: string): Promise<Map<string, SizePlacement>> {
    const cached = this.skus.get(region);
    const now = this.clock.now();
    if (cached && now - cached.atMs < this.skuCacheMs) return cached.sizes;
    const skus = await this.calls.collect(() =>
      this.client.resourceSkus.list({ filter: `location eq '${region}'` }),
    );
    const sizes = sizePlacements(skus, region);
    this.skus.set(region, { atMs: now, sizes });
    return sizes;
  }

  /** Every zone id of the offering's region that has its size. */
  private allZones(o: Offering, sizes: Map<string, SizePlacement>): string[] {
    const placement = sizes.get(o.instanceType.toLowerCase());
    if (!placement) return [];
    return placement.zones.length === 0 ? [o.region] : placement.zones.map((z) => zoneId(o.region, z));
  }

  /** Zone ids the subscription may deploy the offering's size to. */
  private openZones(o: Offering, sizes: Map<string, SizePlacement>): string[] {
    return (sizes.get(o.instanceType.toLowerCase())?.open ?? []).map((z) => zoneId(o.region, z || undefined));
  }

  private blocked(offeringId: string, zone: string): boolean {
    return (this.capacityBlocks.get(`${offeringId}@${zone}`) ?? 0) > this.clock.now();
  }

  private idOf(name: string): string {
    return vmResourceId(this.subscriptionId, this.resourceGroup, name);
  }

  private snapshot(t: Tracked): Instance {
    return instanceSnapshot(t.offering, {
      id: t.id,
      zone: t.zone,
      state: t.state,
      tags: userTags(t.cloudTags),
      idempotencyKey: t.key,
      microsPerHour: t.microsPerHour,
      launchedAtMs: t.launchedAtMs,
      runningAtMs: t.runningAtMs,
      terminatedAtMs: t.terminatedAtMs,
      terminationReason: t.terminationReason,
    });
  }

  private fail(error: unknown, invalidAllowed: boolean, offering?: Offering): ProviderError {
    return toProviderError(error, {
      ...(offering ? { offeringId: offering.id, region: offering.region } : {}),
      capacityRetryAfterMs: this.capacityRetryAfterMs,
      nowMs: this.clock.now(),
      invalidAllowed,
    });
  }

  private assertOpen(): void {
    if (this.closed) throw new ProviderUnavailableError(AZURE, undefined, 'the client is closed');
  }
}

function reusedKey(key: string): InvalidRequestError {
  return new InvalidRequestError(AZURE, 'idempotencyKey', `"${key}" was used before with other parameters`);
}

/** The error that says most about a failed all-or-nothing call: quota, then capacity, then the request, then rate. */
function mostTelling(errors: readonly ProviderError[]): ProviderError {
  const order = [QuotaExceededError, InsufficientCapacityError, InvalidRequestError, ThrottledError];
  for (const kind of order) {
    const found = errors.find((e) => e instanceof kind);
    if (found) return found;
  }
  return errors[0] ?? new ProviderUnavailableError(AZURE, undefined, 'provision failed');
}
