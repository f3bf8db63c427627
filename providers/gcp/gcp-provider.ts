/**
 * Google Compute Engine behind the Provider contract, on the official SDK (`@google-cloud/compute`, REST transport).
 *
 * - provision: one `instances.bulkInsert` per zone with `count` = `minCount`, so GCE creates all the VMs or none;
 *   its `requestId` is derived from the idempotency key, and so are the VM names, so a repeated call (even from a
 *   restarted broker) cannot create a second set. The operation is awaited: stock-outs arrive in its
 *   `error.errors[]`. A zone that is out of stock is set aside and the next zone of the region is tried.
 * - ownership: labels (for filtering) and a metadata item (exact tags, offering, key, request fingerprint).
 * - list: `instances.aggregatedList` filtered by label, every page.
 * - events: the inventory is polled on the Clock; spot preemptions are read from `compute.instances.preempted`
 *   zone operations.
 * - prices: from the Cloud Billing Catalog API's Compute Engine SKUs (billing-catalog.ts, sku-pricing.ts), read
 *   again every `priceRefreshMs`, the catalog's where the SKUs do not price an offering; changes are published.
 */
import type { protos } from '@google-cloud/compute';
import type { TimerHandle } from '../../lib/clock.ts';
import { Random } from '../../lib/random.ts';
import { startupScriptFor } from '../agent-bootstrap.ts';
import type { Offering } from '../catalog/offering.ts';
import { EventHub } from '../event-hub.ts';
import { ListPrices } from '../list-prices.ts';
import { PriceChanges } from '../price-changes.ts';
import type {
  EventsOptions,
  Instance,
  ListFilter,
  OfferingQuote,
  Provider,
  ProviderEvent,
  ProviderQuota,
  ProvisionRequest,
  Tags,
} from '../provider.ts';
import {
  InsufficientCapacityError,
  InvalidRequestError,
  ProviderError,
  ProviderUnavailableError,
  QuotaExceededError,
} from '../provider-errors.ts';
import { BillingCatalog } from './billing-catalog.ts';
import { GceApi, GceCallError, VENDOR } from './gce-api.ts';
import { faultFromOperation, type GceFault } from './gce-fault.ts';
import { type GcpConfig, type GcpProviderOptions, resolveConfig } from './gcp-config.ts';
import { type InstanceView, instanceId, lastSegment, parseInstanceId, viewOf } from './instance-view.ts';
import { type Explanations, InventoryTracker, NO_EXPLANATIONS } from './inventory-tracker.ts';
import {
  encodeLaunchRecord,
  hasTags,
  KEY_TAG,
  labelFilter,
  labelsFor,
  MAX_LABELS,
  METADATA_KEY,
  OFFERING_TAG,
  OWNER_TAG,
} from './labels.ts';
import { instancePropertiesFor, quotaMetricOf } from './machine-spec.ts';
import { fingerprintOf, instanceNamesFor, requestIdFor } from './request-ids.ts';
import { pricesFromSkus } from './sku-pricing.ts';
import { ZoneDirectory } from './zone-directory.ts';

export { type GcpProviderOptions, gcpOptionsFromEnv } from './gcp-config.ts';

/** GCE's bulkInsert takes up to 5,000 VMs; one broker call never needs more than this. */
const MAX_COUNT = 1_000;
/** Quotas change by request to Google, rarely: regions are read again after this long. */
const QUOTA_REFRESH_MS = 10 * 60_000;
/** Deletes sent at once by one terminate call. */
const DELETE_CONCURRENCY = 8;
const PREEMPTED_OPERATION = 'compute.instances.preempted';
/** The metadata key GCE's guest agent runs as a script at every boot (Linux images). */
export const STARTUP_SCRIPT_KEY = 'startup-script';

type IOperation = protos.google.cloud.compute.v1.IOperation;

/**
 * Builds the adapter: validates the configuration, finds the project, checks the credentials once (a token, then
 * one read call), and starts polling. Missing or refused credentials give one ProviderUnavailableError saying so.
 */
export async function createGcpProvider(options: GcpProviderOptions): Promise<GcpProvider> {
  const config = resolveConfig(options);
  const project = config.project ?? (await projectOfCredentials(config));
  const provider = new GcpProvider({ ...config, project });
  try {
    await provider.checkAccess();
  } catch (error) {
    await provider.close();
    throw error;
  }
  provider.startPolling();
  return provider;
}

/** The project named by the credentials (a key file names one; ADC may know it from gcloud or the metadata server). */
async function projectOfCredentials(config: GcpConfig): Promise<string> {
  const probe = new GceApi({
    project: '',
    clock: config.clock,
    backoff: config.backoff,
    random: new Random(config.seed),
    client: config.client,
  });
  try {
    await probe.checkCredentials();
    const project = await probe.projectId();
    if (project) return project;
  } catch (error) {
    throw credentialsError(error);
  } finally {
    await probe.close();
  }
  throw new ProviderUnavailableError(
    VENDOR,
    undefined,
    'no GCP project: set GOOGLE_CLOUD_PROJECT (or the `project` option), or use credentials that name one',
  );
}

function credentialsError(error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  const message = error instanceof GceCallError ? error.fault.message : String(error);
  return new ProviderUnavailableError(
    VENDOR,
    undefined,
    `no usable GCP credentials (${message}). Use Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS=key.json, ` +
      '`gcloud auth application-default login`, or a VM service account), or pass keyFilename/credentials.',
    { cause: error },
  );
}

interface Launch {
  readonly fingerprint: string;
  readonly ids: readonly string[];
}

export class GcpProvider implements Provider {
  readonly vendor = VENDOR;
  readonly project: string;
  private readonly api: GceApi;
  private readonly zones: ZoneDirectory;
  private readonly hub = new EventHub<ProviderEvent>();
  private readonly tracker: InventoryTracker;
  private readonly offeringsById: ReadonlyMap<string, Offering>;
  private readonly billing: BillingCatalog | undefined;
  private readonly listPrices: ListPrices;
  private readonly priceChanges = new PriceChanges(VENDOR);
  /** Provision calls answered by this process, by idempotency key. */
  private readonly launches = new Map<string, Launch>();
  /** Stopped VMs already asked to go away. */
  private readonly cleanups = new Set<string>();
  private pollTimer: TimerHandle | undefined;
  private closed = false;
  /** Per region: when its quotas were read, and per GPU quota metric the limit and what others in the project use. */
  private readonly quotaCache = new Map<
    string,
    { readAtMs: number; byMetric: Map<string, { limit: number; others: number }> }
  >();

  constructor(private readonly config: GcpConfig & { readonly project: string }) {
    this.project = config.project;
    this.api = new GceApi({
      project: config.project,
      clock: config.clock,
      backoff: config.backoff,
      random: new Random(config.seed),
      client: config.client,
    });
    this.zones = new ZoneDirectory(this.api, config.clock, config.zoneCacheMs);
    this.tracker = new InventoryTracker(config.clock, this.hub, VENDOR, config.terminatedRetentionMs);
    this.offeringsById = new Map(config.offerings.map((o) => [o.id, o]));
    const billing = config.billing
      ? new BillingCatalog(config.billing, config.clock, config.backoff, new Random(`${config.seed}|billing`))
      : undefined;
    this.billing = billing;
    this.listPrices = new ListPrices({
      vendor: VENDOR,
      clock: config.clock,
      offerings: config.offerings,
      read: billing ? async () => pricesFromSkus(await billing.computeSkus(), config.offerings) : undefined,
      ...(config.pricesOff ? { off: config.pricesOff } : {}),
      refreshMs: config.priceRefreshMs,
      log: config.log,
    });
  }

  /** The credentials check, run once at start: a token, then one read call that needs it and the project. */
  async checkAccess(): Promise<void> {
    try {
      await this.api.checkCredentials();
    } catch (error) {
      throw credentialsError(error);
    }
    try {
      await this.zones.zonesOf(this.config.offerings[0]?.region ?? '');
    } catch (error) {
      throw this.unavailable(error, undefined, 'cannot list accelerator types');
    }
  }

  /** Starts the inventory poll on the Clock (the factory does). */
  startPolling(): void {
    if (this.closed || this.pollTimer) return;
    const tick = async () => {
      try {
        await this.inventory({});
      } catch {
        // A failed poll is retried on the next tick; calls report their own errors.
      }
      if (!this.closed) this.pollTimer = this.schedule(tick);
    };
    this.pollTimer = this.schedule(tick);
  }

  async offerings(): Promise<OfferingQuote[]> {
    this.assertOpen();
    const prices = this.listPrices.refresh();
    const quotes: OfferingQuote[] = [];
    for (const offering of this.config.offerings) {
      let availableZones: string[];
      try {
        availableZones = await this.zones.zonesFor(offering);
      } catch (error) {
        throw this.unavailable(error, offering.region, 'cannot list zones');
      }
      quotes.push({ ...offering, available: availableZones.length > 0, availableZones });
    }
    await prices;
    const priced = quotes.map((q) => ({ ...q, microsPerHour: this.listPrices.priceOf(q) }));
    for (const event of this.priceChanges.note(priced, this.config.clock.now())) this.hub.publish(event);
    return priced;
  }

  /**
   * The project's regional GPU quotas for the offerings it sells (regions.get, read again every 10 minutes), as
   * GPUs the broker may hold: the limit less what other VMs of the project use, so that the broker's plans count
   * only its own instances against it.
   */
  async quotas(): Promise<ProviderQuota[]> {
    this.assertOpen();
    const now = this.config.clock.now();
    const quotas: ProviderQuota[] = [];
    const seen = new Set<string>();
    for (const offering of this.config.offerings) {
      const metric = quotaMetricOf(offering);
      const key = `${offering.region}|${metric}`;
      if (!metric || seen.has(key)) continue;
      seen.add(key);
      let region = this.quotaCache.get(offering.region);
      if (!region || now - region.readAtMs >= QUOTA_REFRESH_MS) {
        region = await this.readRegionQuotas(offering.region, now);
        this.quotaCache.set(offering.region, region);
      }
      const entry = region.byMetric.get(metric);
      if (!entry) continue;
      quotas.push({
        region: offering.region,
        gpu: offering.gpu,
        capacityType: offering.capacityType === 'spot' ? 'spot' : 'on-demand',
        maxGpus: Math.max(0, Math.floor(entry.limit - entry.others)),
      });
    }
    return quotas;
  }

  private async readRegionQuotas(
    region: string,
    now: number,
  ): Promise<{ readAtMs: number; byMetric: Map<string, { limit: number; others: number }> }> {
    let rows: { metric: string; limit: number; usage: number }[];
    try {
      rows = await this.api.regionQuotas(region);
    } catch (error) {
      throw this.unavailable(error, region, 'cannot read quotas');
    }
    // What our own VMs hold now, per metric, so that only the rest counts as others' use.
    const ours = new Map<string, number>();
    for (const instance of this.tracker.live()) {
      const offering = this.offeringsById.get(instance.offeringId);
      const metric = offering && offering.region === region ? quotaMetricOf(offering) : undefined;
      if (metric) ours.set(metric, (ours.get(metric) ?? 0) + instance.gpusPerInstance);
    }
    const byMetric = new Map<string, { limit: number; others: number }>();
    for (const row of rows)
      byMetric.set(row.metric, {
        limit: row.limit,
        others: Math.max(0, row.usage - (ours.get(row.metric) ?? 0)),
      });
    return { readAtMs: now, byMetric };
  }

  async provision(request: ProvisionRequest): Promise<Instance[]> {
    this.assertOpen();
    const offering = this.validate(request);
    // A bad agent bootstrap fails here, before anything is asked of GCE.
    const startupScript = startupScriptFor(VENDOR, request.agent);
    const fingerprint = fingerprintOf(request);
    const known = this.launches.get(request.idempotencyKey);
    if (known) return this.repeat(request, known, fingerprint);

    const existing = await this.findByKey(request.idempotencyKey, offering.region);
    if (existing.length > 0) {
      const launch = { fingerprint: existing[0]?.fingerprint ?? '', ids: existing.map((v) => v.id) };
      this.launches.set(request.idempotencyKey, launch);
      return this.repeat(request, launch, fingerprint);
    }

    const zones = await this.candidateZones(offering, request.zone);
    const stockouts: string[] = [];
    for (const zone of zones) {
      const outcome = await this.launchIn(zone, offering, request, fingerprint, startupScript);
      if (outcome.kind === 'launched') {
        this.zones.recordSuccess(offering, zone);
        this.launches.set(request.idempotencyKey, { fingerprint, ids: outcome.views.map((v) => v.id) });
        this.tracker.launched(outcome.views);
        return outcome.views.map((v) => this.tracker.snapshot(v.id) as Instance);
      }
      this.zones.recordStockout(offering, zone, this.config.stockoutRetryMs);
      stockouts.push(`${zone}: ${outcome.message}`);
    }
    throw new InsufficientCapacityError(
      VENDOR,
      offering.id,
      this.config.stockoutRetryMs,
      `no zone of ${offering.region} has ${request.count} × ${offering.instanceType} (${offering.capacityType}) now` +
        (stockouts.length > 0 ? ` (${stockouts.join('; ')})` : ''),
    );
  }

  async terminate(instanceIds: readonly string[]): Promise<void> {
    this.assertOpen();
    const targets = [...new Set(instanceIds)].filter(
      (id) => parseInstanceId(id) !== undefined && !this.tracker.isDeleting(id),
    );
    let failure: unknown;
    for (let i = 0; i < targets.length; i += DELETE_CONCURRENCY) {
      await Promise.all(
        targets.slice(i, i + DELETE_CONCURRENCY).map(async (id) => {
          try {
            if (!this.tracker.knows(id) && !(await this.isOurs(id))) return;
            await this.deleteInstance(id);
            this.tracker.deleting(id);
          } catch (error) {
            failure ??= error;
          }
        }),
      );
    }
    if (failure !== undefined) throw failure;
  }

  async list(filter: ListFilter = {}): Promise<Instance[]> {
    this.assertOpen();
    const wanted = filter.tags ?? {};
    const views = await this.inventory(wanted);
    const result: Instance[] = [];
    const listed = new Set<string>();
    for (const view of views) {
      const instance = this.tracker.snapshot(view.id);
      if (!instance) continue;
      listed.add(instance.id);
      if (instance.state !== 'terminated' || filter.includeTerminated) result.push(instance);
    }
    if (filter.includeTerminated)
      for (const instance of this.tracker.ended())
        if (!listed.has(instance.id) && hasTags(instance.tags, wanted)) result.push(instance);
    return result;
  }

  events(options: EventsOptions = {}): AsyncIterable<ProviderEvent> {
    return this.hub.iterate(options.signal);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pollTimer?.cancel();
    this.hub.close();
    await Promise.all([this.api.close(), this.billing?.close()]);
  }

  // ---- provisioning -------------------------------------------------------------------------------------------

  private validate(request: ProvisionRequest): Offering {
    const offering = this.offeringsById.get(request.offeringId);
    if (!offering)
      throw new InvalidRequestError(
        VENDOR,
        'offeringId',
        `"${request.offeringId}" is not a GCP offering sold here`,
      );
    if (!Number.isSafeInteger(request.count) || request.count < 1 || request.count > MAX_COUNT)
      throw new InvalidRequestError(
        VENDOR,
        'count',
        `must be an integer from 1 to ${MAX_COUNT}, got ${request.count}`,
      );
    if (typeof request.idempotencyKey !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(request.idempotencyKey))
      throw new InvalidRequestError(VENDOR, 'idempotencyKey', 'must be 1–255 printable ASCII characters');
    const tags = this.tagsFor(offering, request);
    if (Object.keys(labelsFor(tags)).length > MAX_LABELS)
      throw new InvalidRequestError(
        VENDOR,
        'tags',
        `GCE allows ${MAX_LABELS} labels per VM, gpubroker uses 3`,
      );
    return offering;
  }

  private tagsFor(offering: Offering, request: ProvisionRequest): Tags {
    return {
      ...(request.tags ?? {}),
      [OWNER_TAG]: this.config.owner,
      [OFFERING_TAG]: offering.id,
      [KEY_TAG]: request.idempotencyKey,
    };
  }

  /** A key seen before: the same request gets the same instances, another request is refused. */
  private repeat(request: ProvisionRequest, launch: Launch, fingerprint: string): Instance[] {
    if (launch.fingerprint !== fingerprint)
      throw new InvalidRequestError(
        VENDOR,
        'idempotencyKey',
        `"${request.idempotencyKey}" was used before with other parameters`,
      );
    return launch.ids.map((id) => this.tracker.snapshot(id)).filter((i): i is Instance => i !== undefined);
  }

  /** Our VMs launched under `key`, found by label (also after a restart). */
  private async findByKey(key: string, region: string): Promise<InstanceView[]> {
    try {
      return await this.inventory({ [KEY_TAG]: key });
    } catch (error) {
      throw this.unavailable(error, region, 'cannot look up earlier launches');
    }
  }

  private async candidateZones(offering: Offering, requested: string | undefined): Promise<string[]> {
    try {
      if (requested === undefined) return await this.zones.zonesFor(offering, { all: true });
      if (!(await this.zones.zonesOf(offering.region)).includes(requested))
        throw new InvalidRequestError(VENDOR, 'zone', `"${requested}" is not a zone of ${offering.region}`);
      if (!(await this.zones.zonesFor(offering, { all: true })).includes(requested))
        throw new InvalidRequestError(VENDOR, 'zone', `${requested} does not offer ${offering.instanceType}`);
      return [requested];
    } catch (error) {
      throw this.unavailable(error, offering.region, 'cannot list zones');
    }
  }

  /** One all-or-nothing bulkInsert in `zone`, awaited; a stock-out is an outcome, every other failure throws. */
  private async launchIn(
    zone: string,
    offering: Offering,
    request: ProvisionRequest,
    fingerprint: string,
    startupScript: string | undefined,
  ): Promise<{ kind: 'launched'; views: InstanceView[] } | { kind: 'stockout'; message: string }> {
    const tags = this.tagsFor(offering, request);
    const names = instanceNamesFor(
      this.config.namePrefix,
      this.config.owner,
      request.idempotencyKey,
      request.count,
    );
    // The price at launch: what the instance is billed at, also after a restart (it is read back from the record).
    const microsPerHour = this.listPrices.priceOf(offering);
    const record = encodeLaunchRecord({
      tags,
      offeringId: offering.id,
      idempotencyKey: request.idempotencyKey,
      fingerprint,
      microsPerHour,
    });
    const properties = instancePropertiesFor(offering, this.config.instance, labelsFor(tags), {
      [METADATA_KEY]: record,
      // The agent's start-up script (request.agent), the same text for every zone and every repeat of the key.
      ...(startupScript === undefined ? {} : { [STARTUP_SCRIPT_KEY]: startupScript }),
    });
    const requestId = requestIdFor(
      this.project,
      'bulkInsert',
      this.config.owner,
      request.idempotencyKey,
      zone,
    );
    let fault: GceFault | undefined;
    try {
      const started = await this.api.bulkInsert(zone, requestId, names, properties);
      fault = faultFromOperation(await this.finished(zone, started));
    } catch (error) {
      if (!(error instanceof GceCallError))
        throw this.unavailable(error, offering.region, 'bulkInsert failed');
      fault = error.fault;
    }
    if (fault?.kind === 'capacity') return { kind: 'stockout', message: fault.message };
    if (fault?.kind === 'already-exists') {
      // A launch under this key finished between our look-up and our insert: it is the answer.
      const views = await this.findByKey(request.idempotencyKey, offering.region);
      if (views.length > 0) return { kind: 'launched', views };
    }
    if (fault) throw this.provisionError(fault, offering, request);
    const now = this.config.clock.now();
    const views = names.map(
      (name): InstanceView => ({
        id: instanceId(zone, name),
        gceId: '',
        zone,
        name,
        status: 'PROVISIONING',
        offering,
        tags,
        idempotencyKey: request.idempotencyKey,
        fingerprint,
        microsPerHour,
        launchedAtMs: now,
        lastStartMs: undefined,
        spot: offering.capacityType === 'spot',
      }),
    );
    return { kind: 'launched', views };
  }

  /** Waits for an operation to be DONE: zoneOperations.wait returns after about two minutes at most, so loop. */
  private async finished(zone: string, op: IOperation): Promise<IOperation> {
    const clock = this.config.clock;
    const deadline = clock.now() + this.config.operationTimeoutMs;
    let current = op;
    while (current.status !== 'DONE') {
      if (this.closed || clock.now() >= deadline || !current.name)
        throw new ProviderUnavailableError(
          VENDOR,
          undefined,
          `operation ${current.name ?? '(unnamed)'} in ${zone} has not finished; repeat the call with the same key`,
        );
      const before = clock.now();
      current = await this.api.waitOperation(zone, current.name);
      if (current.status !== 'DONE' && clock.now() - before < this.config.operationPollMs)
        await clock.sleep(this.config.operationPollMs);
    }
    return current;
  }

  private provisionError(fault: GceFault, offering: Offering, request: ProvisionRequest): ProviderError {
    switch (fault.kind) {
      case 'quota':
        return new QuotaExceededError(
          VENDOR,
          fault.quota?.name ?? 'unknown',
          fault.quota?.limit ?? 0,
          request.count * offering.gpusPerInstance,
          fault.message,
        );
      case 'invalid':
      case 'not-found':
        return new InvalidRequestError(VENDOR, 'request', `GCE refused it: ${fault.message}`);
      default:
        return this.unavailable(new GceCallError(fault), offering.region, 'bulkInsert failed');
    }
  }

  // ---- termination --------------------------------------------------------------------------------------------

  /**
   * Whether a VM this process has not seen yet is one of ours (a broker restarted and has not polled yet): an id
   * of someone else's VM in the project is an unknown id, never a VM to delete.
   */
  private async isOurs(id: string): Promise<boolean> {
    const { zone, name } = parseInstanceId(id) as { zone: string; name: string };
    let view: InstanceView | undefined;
    try {
      view = viewOf(await this.api.getInstance(zone, name), this.config.catalog, VENDOR);
    } catch (error) {
      if (error instanceof GceCallError && ['not-found', 'invalid'].includes(error.fault.kind)) return false;
      throw this.unavailable(error, undefined, `cannot read ${id}`);
    }
    if (view?.tags[OWNER_TAG] !== this.config.owner) return false;
    this.tracker.observe([view], false, this.config.clock.now(), NO_EXPLANATIONS);
    return true;
  }

  private async deleteInstance(id: string): Promise<void> {
    const { zone, name } = parseInstanceId(id) as { zone: string; name: string };
    const requestId = requestIdFor(this.project, 'delete', id, this.tracker.gceIdOf(id) ?? '');
    try {
      await this.api.deleteInstance(zone, name, requestId);
    } catch (error) {
      // Unknown and already deleted instances are not an error; neither is an id GCE cannot parse.
      if (error instanceof GceCallError && ['not-found', 'invalid'].includes(error.fault.kind)) return;
      throw this.unavailable(error, undefined, `cannot delete ${id}`);
    }
  }

  // ---- inventory ----------------------------------------------------------------------------------------------

  /**
   * Our VMs carrying `tags`, read from GCE and merged into the tracker; a listing without extra tags covers
   * everything we own, so it also shows which VMs are gone.
   */
  private async inventory(tags: Tags): Promise<InstanceView[]> {
    const wanted: Tags = { ...tags, [OWNER_TAG]: this.config.owner };
    const startedAtMs = this.config.clock.now();
    let raw: protos.google.cloud.compute.v1.IInstance[];
    try {
      raw = await this.api.listInstances(labelFilter(wanted));
    } catch (error) {
      throw this.unavailable(error, undefined, 'cannot list instances');
    }
    const views = raw
      .map((i) => viewOf(i, this.config.catalog, VENDOR))
      .filter((v): v is InstanceView => v !== undefined && hasTags(v.tags, wanted));
    const complete = Object.keys(tags).length === 0;
    const why = await this.explain(this.tracker.unexplained(views, complete, startedAtMs));
    this.tracker.observe(views, complete, startedAtMs, why);
    this.cleanUp(views);
    return views;
  }

  /** Looks up which of `views` GCE preempted; on-demand VMs that stop on their own have failed. */
  private async explain(views: readonly InstanceView[]): Promise<Explanations> {
    const spot = views.filter((v) => v.spot);
    if (spot.length === 0) return NO_EXPLANATIONS;
    const preemptedAtMs = new Map<string, number>();
    const unresolved = new Set<string>();
    for (const zone of new Set(spot.map((v) => v.zone))) {
      const inZone = spot.filter((v) => v.zone === zone);
      try {
        const ops = await this.api.listOperations(zone, PREEMPTED_OPERATION);
        for (const view of inZone) {
          const op = ops.find(
            (o) =>
              (view.gceId !== '' && String(o.targetId ?? '') === view.gceId) ||
              lastSegment(o.targetLink) === view.name,
          );
          const at = Date.parse(op?.insertTime ?? '');
          if (op) preemptedAtMs.set(view.id, Number.isFinite(at) ? at : this.config.clock.now());
        }
      } catch {
        for (const view of inZone) unresolved.add(view.id);
      }
    }
    return { preemptedAtMs, unresolved };
  }

  /** Stopped VMs of ours never run again (gpubroker does not restart VMs): delete them so their disks stop costing. */
  private cleanUp(views: readonly InstanceView[]): void {
    for (const view of views) {
      if (!['TERMINATED', 'STOPPED', 'SUSPENDED'].includes(view.status)) continue;
      if (this.cleanups.has(view.id) || this.tracker.deleteRequested(view.id)) continue;
      this.cleanups.add(view.id);
      this.deleteInstance(view.id).catch(() => this.cleanups.delete(view.id));
    }
  }

  // ---- plumbing -----------------------------------------------------------------------------------------------

  private schedule(tick: () => Promise<void>): TimerHandle {
    const clock = this.config.clock;
    return clock.setTimer(clock.now() + this.config.pollIntervalMs, () => void tick());
  }

  private assertOpen(): void {
    if (this.closed) throw new ProviderUnavailableError(VENDOR, undefined, 'the GCP provider is closed');
  }

  /** Any failure as a contract error: typed ones pass, credential problems are named, the rest is unavailable. */
  private unavailable(error: unknown, region: string | undefined, what: string): ProviderError {
    if (error instanceof ProviderError) return error;
    if (!(error instanceof GceCallError))
      return new ProviderUnavailableError(VENDOR, region, `${what}: ${String(error)}`, { cause: error });
    const fault = error.fault;
    if (fault.kind === 'auth')
      return new ProviderUnavailableError(
        VENDOR,
        region,
        `${what}: GCP refused the credentials for project ${this.project}` +
          `${fault.httpStatus ? ` (HTTP ${fault.httpStatus})` : ''}: ${fault.message}`,
        { cause: error },
      );
    return new ProviderUnavailableError(VENDOR, region, `${what}: ${fault.message}`, { cause: error });
  }
}
