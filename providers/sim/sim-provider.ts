/**
 * One simulated cloud vendor: the catalog's offerings and prices, finite stock per offering and zone, provisioning
 * delays, per-account quotas, API throttling, boot failures, outages, price changes, and spot stock-outs and
 * preemptions replayed from real traces (see spot-replay.ts). Everything runs on the Clock it is given and draws
 * from generators seeded by the scenario, so the same seed and the same calls give the same event log.
 *
 * API calls answer at once (no simulated network latency), so tests and simulations can await them without
 * moving the clock; what takes time in a cloud (booting, shutting down, reclaim warnings) happens on timers.
 *
 * Given a persistence (sim-state.ts), every change of state is recorded, and `snapshotState`/`restoreState` save
 * and rebuild the vendor, so that its inventory outlives the process it runs in.
 */
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import { type Micros, micros, usdToMicros } from '../../lib/money.ts';
import { hashString, Random } from '../../lib/random.ts';
import { type Offering, reservedTwin } from '../catalog/offering.ts';
import { EventHub } from '../event-hub.ts';
import { instanceSnapshot, stateChangedEvent } from '../instance-snapshot.ts';
import type {
  EventsOptions,
  Instance,
  InstanceState,
  ListFilter,
  OfferingQuote,
  Provider,
  ProviderEvent,
  ProviderQuota,
  ProvisionRequest,
  Tags,
  TerminationReason,
} from '../provider.ts';
import {
  InsufficientCapacityError,
  InvalidRequestError,
  ProviderUnavailableError,
  QuotaExceededError,
  ThrottledError,
} from '../provider-errors.ts';
import { sampleDelay } from './sample-delay.ts';
import { matches, type SimScenario, simScenario, type VendorSettings, vendorSettings } from './scenario.ts';
import type { SavedInstance, SavedTimer, SavedVendor, SimPersistence } from './sim-state.ts';
import { CountedRandom, SimTimers } from './sim-timers.ts';
import { type SpotPoolTraces, SpotReplay, type TraceDrop } from './spot-replay.ts';
import { TokenBucket } from './token-bucket.ts';

export interface SimProviderOptions {
  readonly vendor: string;
  readonly clock: Clock;
  /** Catalog offerings; those of other vendors are ignored. */
  readonly offerings: readonly Offering[];
  readonly scenario?: SimScenario;
  /** Shared by the vendors of one simulated multi-cloud; made from the scenario when omitted. */
  readonly spotReplay?: SpotReplay;
  /** Clock time the scenario's times count from (default: the clock's now). */
  readonly startMs?: number;
  /** The timers of the set this vendor belongs to (on `clock`); default: its own. */
  readonly timers?: SimTimers;
  /** Told of every change of state (the set's snapshot file); default: nothing is recorded. */
  readonly persistence?: SimPersistence;
  /** The vendor is about to be restored (`restoreState`): its scenario timers come from the saved state. */
  readonly restoring?: boolean;
}

/** A pending transition of an instance: its boot (which may fail), or its end (shutdown or reclaim). */
type Transition = SavedTimer &
  (
    | { readonly kind: 'boot'; readonly fails: boolean }
    | { readonly kind: 'end'; readonly reason: TerminationReason }
  );

/** A pending timer of a restored vendor: `arm` sets it again (the set calls these in `seq` order). */
export interface PendingTimer {
  readonly seq: number;
  arm(): void;
}

/** The most instances one provision call may ask for (AWS's RunInstances takes up to 1,000 too). */
const MAX_COUNT_PER_CALL = 1_000;

interface SimInstance {
  readonly id: string;
  readonly pool: Pool;
  readonly tags: Tags;
  readonly idempotencyKey: string;
  readonly microsPerHour: Micros;
  readonly launchedAtMs: number;
  state: InstanceState;
  runningAtMs?: number;
  terminatedAtMs?: number;
  terminationReason?: TerminationReason;
  interruptAtMs?: number;
  /** The one pending transition: boot, reclaim or shutdown. */
  timer?: TimerHandle;
  next?: Transition;
}

/** A spot, on-demand or reserved offering in one zone: what stock and preemption are counted on. */
interface Pool {
  readonly offering: Offering;
  readonly zone: string;
  /** Instances not yet terminated. */
  readonly active: Set<SimInstance>;
  readonly traces: SpotPoolTraces | undefined;
  /** The scenario's stock for this offering and zone before spot availability (its rules are fixed). */
  readonly baseStock: number;
  dropTimer?: TimerHandle;
  /** The drop `dropTimer` waits for. */
  drop?: SavedTimer & { readonly trace: TraceDrop };
  /** Fraction of an instance owed to the preemption trace, carried between drops. */
  carry: number;
}

interface ActiveOutage {
  readonly region: string | undefined;
  readonly zone: string | undefined;
}

export class SimProvider implements Provider {
  readonly vendor: string;
  readonly settings: VendorSettings;
  private readonly clock: SimTimers;
  private readonly persistence: SimPersistence | undefined;
  private readonly scenario: SimScenario;
  private readonly replay: SpotReplay;
  private readonly startMs: number;
  private readonly catalog = new Map<string, Offering>();
  private readonly reservedCounts = new Map<string, number>();
  private readonly zones = new Map<string, string[]>();
  private readonly pools = new Map<string, Pool>();
  private readonly instances = new Map<string, SimInstance>();
  /** Every id ever issued, so that an id is never reused after its instance leaves the inventory. */
  private readonly issuedIds = new Set<string>();
  private readonly activeByRegion = new Map<string, Set<SimInstance>>();
  private readonly idempotency = new Map<string, { fingerprint: string; instances: SimInstance[] }>();
  private readonly prices = new Map<string, Micros>();
  /** Each offering's pools by zone, built on first use. */
  private readonly zonePools = new Map<string, readonly Pool[]>();
  /** The quotes `offerings()` last handed out, by offering id. */
  private readonly lastQuotes = new Map<string, OfferingQuote>();
  private readonly outages = new Set<ActiveOutage>();
  /** This vendor's outages by their index in the scenario. */
  private readonly outageScopes = new Map<number, ActiveOutage>();
  private readonly hub = new EventHub<ProviderEvent>();
  /** Scenario events still to come, by id (`outage-start:N`, `outage-end:N`, `price:N`). */
  private readonly scenarioTimers = new Map<string, SavedTimer & { readonly handle: TimerHandle }>();
  private readonly bucket: TokenBucket | undefined;
  private readonly delays: CountedRandom;
  private readonly failures: CountedRandom;
  private readonly ids: CountedRandom;
  private readonly victims: CountedRandom;
  private closed = false;

  constructor(options: SimProviderOptions) {
    this.vendor = options.vendor;
    this.clock = options.timers ?? new SimTimers(options.clock);
    this.persistence = options.persistence;
    this.scenario = options.scenario ?? simScenario();
    this.startMs = options.startMs ?? options.clock.now();
    this.replay = options.spotReplay ?? new SpotReplay(this.scenario, this.startMs);
    this.settings = vendorSettings(this.scenario, this.vendor);
    const root = new Random(hashString(`${this.scenario.seed}|${this.vendor}`));
    this.delays = new CountedRandom(root.fork('delays'));
    this.failures = new CountedRandom(root.fork('failures'));
    this.ids = new CountedRandom(root.fork('ids'));
    this.victims = new CountedRandom(root.fork('victims'));
    if (this.settings.throttle)
      this.bucket = new TokenBucket(
        this.clock,
        this.settings.throttle.burst,
        this.settings.throttle.perSecond,
      );

    for (const o of options.offerings) if (o.vendor === this.vendor) this.catalog.set(o.id, o);
    for (const r of this.scenario.reservations) {
      const base = this.catalog.get(r.offeringId);
      if (!base || base.vendor !== this.vendor) continue;
      if (base.capacityType !== 'on-demand')
        throw new InvalidRequestError(
          this.vendor,
          'scenario.reservations',
          `${r.offeringId} is not on-demand`,
        );
      const price =
        r.usdPerHour === undefined ? micros(Math.round(base.microsPerHour * 0.6)) : usdToMicros(r.usdPerHour);
      const twin = { ...reservedTwin(base), microsPerHour: price };
      this.catalog.set(twin.id, twin);
      this.reservedCounts.set(twin.id, (this.reservedCounts.get(twin.id) ?? 0) + r.count);
    }
    for (const o of this.catalog.values())
      if (!this.zones.has(o.region))
        this.zones.set(o.region, zoneNames(this.vendor, o.region, this.settings));
    for (const [n, outage] of this.scenario.outages.entries())
      if (outage.vendor === this.vendor)
        this.outageScopes.set(n, { region: outage.region, zone: outage.zone });
    if (!options.restoring) this.scheduleScenario();
  }

  /** Zones of a region, as this vendor names them (`us-east-1a`, `us-central1-a`, `eastus-1`). */
  zonesOf(region: string): readonly string[] {
    return this.zones.get(region) ?? [];
  }

  /** Whether a pool's zone is up and has room for one more instance. */
  private zoneAvailable(pool: Pool): boolean {
    return !this.zoneDown(pool.offering.region, pool.zone) && this.freeIn(pool) > 0;
  }

  /** Instances of an offering a zone holds now, and how many more can be launched there. */
  capacity(offeringId: string, zone: string): { stock: number; free: number } {
    const offering = this.catalog.get(offeringId);
    if (!offering || !this.zonesOf(offering.region).includes(zone)) return { stock: 0, free: 0 };
    const pool = this.pool(offering, zone);
    const stock =
      offering.capacityType === 'reserved' ? (this.reservedCounts.get(offering.id) ?? 0) : this.stock(pool);
    return { stock, free: this.freeIn(pool) };
  }

  /** How many more instances of the pool's offering can be launched in its zone now. */
  private freeIn(pool: Pool): number {
    const { offering } = pool;
    if (offering.capacityType === 'reserved') {
      // A reservation is regional: its count is shared by the region's zones.
      let used = 0;
      for (const p of this.poolsOf(offering)) used += p.active.size;
      return Math.max(0, (this.reservedCounts.get(offering.id) ?? 0) - used);
    }
    return Math.max(0, this.stock(pool) - pool.active.size);
  }

  /** The offering's pools, one per zone of its region, in zone order. */
  private poolsOf(offering: Offering): readonly Pool[] {
    let pools = this.zonePools.get(offering.id);
    if (!pools) {
      pools = this.zonesOf(offering.region).map((zone) => this.pool(offering, zone));
      this.zonePools.set(offering.id, pools);
    }
    return pools;
  }

  /** Synchronous event listener (simulations and recorders); returns the unsubscribe function. */
  subscribe(listener: (event: ProviderEvent) => void): () => void {
    return this.hub.subscribe(listener);
  }

  async offerings(): Promise<OfferingQuote[]> {
    this.admitCall();
    const quotes: OfferingQuote[] = [];
    for (const o of this.catalog.values()) {
      const microsPerHour = this.priceOf(o);
      const up = !this.regionDown(o.region);
      // The quote of the last call when nothing in it changed: the broker asks at every tick, and most ticks
      // change nothing, so the same frozen object is handed out again (compared zone by zone, without a list).
      const last = this.lastQuotes.get(o.id);
      if (last && last.microsPerHour === microsPerHour) {
        let same = true;
        let n = 0;
        if (up)
          for (const pool of this.poolsOf(o))
            if (this.zoneAvailable(pool)) {
              if (last.availableZones[n] !== pool.zone) same = false;
              n++;
            }
        if (same && n === last.availableZones.length) {
          quotes.push(last);
          continue;
        }
      }
      const availableZones: string[] = [];
      if (up)
        for (const pool of this.poolsOf(o)) if (this.zoneAvailable(pool)) availableZones.push(pool.zone);
      const quote: OfferingQuote = Object.freeze({
        ...o,
        microsPerHour,
        available: availableZones.length > 0,
        availableZones: Object.freeze(availableZones) as string[],
      });
      this.lastQuotes.set(o.id, quote);
      quotes.push(quote);
    }
    return quotes;
  }

  /** The scenario's quota rules, one per region where a rule names none (cloud quotas are regional). */
  async quotas(): Promise<ProviderQuota[]> {
    this.admitCall();
    const regions = [...this.zones.keys()].sort();
    return this.settings.quotas.flatMap((rule) =>
      (rule.region === undefined ? regions : [rule.region]).map((region) => ({
        region,
        ...(rule.gpu === undefined ? {} : { gpu: rule.gpu }),
        ...(rule.capacityType === undefined ? {} : { capacityType: rule.capacityType }),
        maxGpus: rule.maxGpus,
      })),
    );
  }

  async provision(request: ProvisionRequest): Promise<Instance[]> {
    const offering = this.validate(request);
    this.admitCall();
    const fingerprint = JSON.stringify([
      request.offeringId,
      request.count,
      request.zone ?? null,
      Object.entries(request.tags ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    ]);
    const seen = this.idempotency.get(request.idempotencyKey);
    if (seen) {
      if (seen.fingerprint !== fingerprint)
        throw new InvalidRequestError(
          this.vendor,
          'idempotencyKey',
          `"${request.idempotencyKey}" was used before with other parameters`,
        );
      return seen.instances.map(snapshot);
    }
    if (this.regionDown(offering.region) || (request.zone && this.zoneDown(offering.region, request.zone)))
      throw new ProviderUnavailableError(
        this.vendor,
        offering.region,
        `region ${offering.region} is not answering`,
      );
    this.checkQuota(offering, request.count);
    const zone = this.chooseZone(offering, request.count, request.zone);
    const pool = this.pool(offering, zone);
    const now = this.clock.now();
    const created: SimInstance[] = [];
    for (let i = 0; i < request.count; i++) {
      const instance: SimInstance = {
        id: this.newInstanceId(),
        pool,
        tags: Object.freeze({ ...(request.tags ?? {}) }),
        idempotencyKey: request.idempotencyKey,
        microsPerHour: this.priceOf(offering),
        launchedAtMs: now,
        state: 'pending',
      };
      this.instances.set(instance.id, instance);
      pool.active.add(instance);
      this.regionSet(offering.region).add(instance);
      created.push(instance);
      const delay = sampleDelay(this.settings.provisioningDelay[offering.capacityType], this.delays);
      const fails = this.failures.chance(this.settings.bootFailureRate);
      this.setNext(instance, now + delay, { kind: 'boot', fails });
    }
    // The call's effects are complete (and durable) before anyone hears of them.
    this.idempotency.set(request.idempotencyKey, { fingerprint, instances: created });
    this.persistence?.changed(true);
    for (const instance of created) this.publishState(instance, null, 'pending');
    return created.map(snapshot);
  }

  async terminate(instanceIds: readonly string[]): Promise<void> {
    this.admitCall();
    const targets: SimInstance[] = [];
    for (const id of new Set(instanceIds)) {
      const instance = this.instances.get(id);
      if (!instance || instance.state === 'terminating' || instance.state === 'terminated') continue;
      const { region } = instance.pool.offering;
      if (this.regionDown(region) || this.zoneDown(region, instance.pool.zone))
        throw new ProviderUnavailableError(this.vendor, region, `region ${region} is not answering`);
      targets.push(instance);
    }
    const now = this.clock.now();
    const from = targets.map((instance) => instance.state);
    for (const instance of targets) {
      instance.state = 'terminating';
      const delay = sampleDelay(this.settings.terminationDelay, this.delays);
      this.setNext(instance, now + delay, { kind: 'end', reason: 'requested' });
    }
    if (targets.length > 0) this.persistence?.changed(true);
    for (const [n, instance] of targets.entries())
      this.publishState(instance, from[n] as InstanceState, 'terminating');
  }

  async list(filter: ListFilter = {}): Promise<Instance[]> {
    this.admitCall();
    const horizon = this.clock.now() - this.settings.terminatedRetentionMs;
    const wanted = Object.entries(filter.tags ?? {});
    const result: Instance[] = [];
    for (const instance of this.instances.values()) {
      if (instance.state === 'terminated') {
        if ((instance.terminatedAtMs ?? 0) < horizon) {
          this.forget(instance);
          continue;
        }
        if (!filter.includeTerminated) continue;
      }
      if (wanted.every(([k, v]) => instance.tags[k] === v)) result.push(snapshot(instance));
    }
    return result;
  }

  events(options: EventsOptions = {}): AsyncIterable<ProviderEvent> {
    return this.hub.iterate(options.signal);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.scenarioTimers.values()) timer.handle.cancel();
    for (const instance of this.instances.values()) instance.timer?.cancel();
    for (const pool of this.pools.values()) pool.dropTimer?.cancel();
    this.hub.close();
  }

  // ---- saving and restoring (sim-state.ts) --------------------------------------------------------------------

  /** Everything about this vendor that the scenario, the catalog and the clock do not give. */
  snapshotState(): SavedVendor {
    const instances: SavedInstance[] = [];
    const saved = new Set<SimInstance>();
    const save = (instance: SimInstance, listed: boolean) => {
      saved.add(instance);
      instances.push(savedInstance(instance, listed));
    };
    for (const instance of this.instances.values()) save(instance, true);
    for (const record of this.idempotency.values())
      for (const instance of record.instances) if (!saved.has(instance)) save(instance, false);
    const pools = [];
    for (const pool of this.pools.values()) {
      if (pool.carry === 0 && !pool.drop) continue;
      const { drop } = pool;
      pools.push({
        key: `${pool.offering.id}@${pool.zone}`,
        carry: pool.carry,
        ...(drop
          ? {
              drop: {
                atMs: drop.atMs,
                seq: drop.seq,
                dropAtMs: drop.trace.atMs,
                alive: drop.trace.alive,
                lost: drop.trace.lost,
              },
            }
          : {}),
      });
    }
    return {
      draws: {
        delays: this.delays.draws,
        failures: this.failures.draws,
        ids: this.ids.draws,
        victims: this.victims.draws,
      },
      bucket: this.bucket ? this.bucket.state : null,
      prices: [...this.prices],
      outages: [...this.outageScopes].filter(([, scope]) => this.outages.has(scope)).map(([n]) => n),
      scenarioTimers: [...this.scenarioTimers].map(([id, t]) => ({ id, atMs: t.atMs, seq: t.seq })),
      instances,
      idempotency: [...this.idempotency].map(([key, record]) => [
        key,
        record.fingerprint,
        record.instances.map((i) => i.id),
      ]),
      // Pools are made as they are first looked at; sorted, the same state saves the same way.
      pools: pools.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
    };
  }

  /**
   * Rebuilds this vendor (made with `restoring`, and not yet used) from its saved state. Its pending timers are
   * returned rather than set: the set re-arms every vendor's together, in the order they were first set. Throws
   * an Error naming what does not fit this catalog.
   */
  restoreState(saved: SavedVendor): PendingTimer[] {
    this.delays.skip(saved.draws.delays);
    this.failures.skip(saved.draws.failures);
    this.victims.skip(saved.draws.victims);
    // Every id the generator drew was issued (a draw that repeated an issued id was not, but is in the set).
    for (let n = 0; n < saved.draws.ids; n += 2) this.issuedIds.add(this.candidateId());
    if (this.bucket && saved.bucket) this.bucket.state = saved.bucket;
    for (const [offeringId, price] of saved.prices) this.prices.set(offeringId, micros(price));
    for (const n of saved.outages) {
      const scope = this.outageScopes.get(n);
      if (scope) this.outages.add(scope);
    }
    const pending: PendingTimer[] = [];
    const byId = new Map<string, SimInstance>();
    for (const s of saved.instances) {
      const offering = this.catalog.get(s.offeringId);
      if (!offering) throw new Error(`instance ${s.id}: offering "${s.offeringId}" is not in the catalog`);
      if (!this.zonesOf(offering.region).includes(s.zone))
        throw new Error(`instance ${s.id}: "${s.zone}" is not a zone of ${offering.region}`);
      const pool = this.pool(offering, s.zone);
      const instance: SimInstance = {
        id: s.id,
        pool,
        tags: Object.freeze({ ...s.tags }),
        idempotencyKey: s.idempotencyKey,
        microsPerHour: micros(s.microsPerHour),
        launchedAtMs: s.launchedAtMs,
        state: s.state,
        ...(s.runningAtMs === undefined ? {} : { runningAtMs: s.runningAtMs }),
        ...(s.terminatedAtMs === undefined ? {} : { terminatedAtMs: s.terminatedAtMs }),
        ...(s.terminationReason === undefined ? {} : { terminationReason: s.terminationReason }),
        ...(s.interruptAtMs === undefined ? {} : { interruptAtMs: s.interruptAtMs }),
      };
      byId.set(instance.id, instance);
      this.issuedIds.add(instance.id);
      if (s.listed) this.instances.set(instance.id, instance);
      if (s.state !== 'terminated') {
        pool.active.add(instance);
        this.regionSet(offering.region).add(instance);
      }
      const next = s.next;
      if (next) pending.push({ seq: next.seq, arm: () => this.setNext(instance, next.atMs, next) });
    }
    for (const [key, fingerprint, ids] of saved.idempotency) {
      const created = ids.map((id) => byId.get(id));
      if (created.every((i) => i !== undefined))
        this.idempotency.set(key, { fingerprint, instances: created });
    }
    for (const p of saved.pools) {
      const at = p.key.lastIndexOf('@');
      const offering = this.catalog.get(p.key.slice(0, at));
      if (!offering) throw new Error(`spot pool ${p.key}: the offering is not in the catalog`);
      const pool = this.pool(offering, p.key.slice(at + 1));
      pool.carry = p.carry;
      const drop = p.drop;
      if (drop)
        pending.push({
          seq: drop.seq,
          arm: () => this.armDrop(pool, { atMs: drop.dropAtMs, alive: drop.alive, lost: drop.lost }),
        });
    }
    for (const t of saved.scenarioTimers)
      pending.push({ seq: t.seq, arm: () => this.armScenario(t.id, t.atMs) });
    return pending;
  }

  // ---- lifecycle ----------------------------------------------------------------------------------------------

  /** Sets the instance's one pending transition (replacing any). */
  private setNext(
    instance: SimInstance,
    atMs: number,
    next:
      | { readonly kind: 'boot'; readonly fails: boolean }
      | { readonly kind: 'end'; readonly reason: TerminationReason },
  ): void {
    instance.timer?.cancel();
    instance.timer = this.clock.setTimer(atMs, () => this.transition(instance));
    const seq = this.clock.lastSeq;
    instance.next =
      next.kind === 'boot'
        ? { kind: 'boot', fails: next.fails, atMs, seq }
        : { kind: 'end', reason: next.reason, atMs, seq };
  }

  private transition(instance: SimInstance): void {
    const next = instance.next;
    instance.timer = undefined;
    instance.next = undefined;
    if (next?.kind === 'boot') this.finishBoot(instance, next.fails);
    else if (next?.kind === 'end') this.markTerminated(instance, next.reason);
  }

  /** Drops a terminated instance from the inventory, and its key once no instance it created is listed. */
  private forget(instance: SimInstance): void {
    this.instances.delete(instance.id);
    const record = this.idempotency.get(instance.idempotencyKey);
    if (record?.instances.every((i) => !this.instances.has(i.id)))
      this.idempotency.delete(instance.idempotencyKey);
    this.persistence?.changed();
  }

  private finishBoot(instance: SimInstance, fails: boolean): void {
    if (instance.state !== 'pending') return;
    if (fails) {
      this.fail(instance, 'instance failed to boot');
      return;
    }
    instance.state = 'running';
    instance.runningAtMs = this.clock.now();
    this.persistence?.changed();
    this.publishState(instance, 'pending', 'running');
    const pool = instance.pool;
    if (pool.traces?.preemption && !pool.dropTimer) this.scheduleDrop(pool);
  }

  private markTerminated(instance: SimInstance, reason: TerminationReason): void {
    if (instance.state === 'terminated') return;
    instance.timer?.cancel();
    instance.timer = undefined;
    instance.next = undefined;
    const from = instance.state;
    instance.state = 'terminated';
    instance.terminatedAtMs = this.clock.now();
    instance.terminationReason = reason;
    instance.pool.active.delete(instance);
    this.regionSet(instance.pool.offering.region).delete(instance);
    this.persistence?.changed();
    this.publishState(instance, from, 'terminated', reason);
  }

  private scheduleDrop(pool: Pool): void {
    const preemption = pool.traces?.preemption;
    if (!preemption || this.closed) return;
    const drop = this.replay.nextDrop(preemption, this.clock.now());
    if (drop) this.armDrop(pool, drop);
  }

  private armDrop(pool: Pool, drop: TraceDrop): void {
    pool.dropTimer = this.clock.setTimer(drop.atMs, () => {
      pool.dropTimer = undefined;
      pool.drop = undefined;
      const remaining = this.applyDrop(pool, drop);
      if (remaining > 0) this.scheduleDrop(pool);
      this.persistence?.changed();
    });
    pool.drop = { atMs: drop.atMs, seq: this.clock.lastSeq, trace: drop };
  }

  /** Reclaims the pool's share of a trace drop; returns how many instances can still be reclaimed later. */
  private applyDrop(pool: Pool, drop: TraceDrop): number {
    const eligible = [...pool.active].filter((i) => i.state === 'running' && i.interruptAtMs === undefined);
    pool.carry += (eligible.length * drop.lost) / drop.alive;
    const count = Math.min(eligible.length, Math.floor(pool.carry + 1e-9));
    pool.carry = Math.max(0, pool.carry - count);
    const now = this.clock.now();
    const warning = this.settings.interruptionWarningMs;
    for (let k = 0; k < count; k++) {
      // Partial Fisher–Yates: a seeded choice of victims.
      const j = k + this.victims.int(0, eligible.length - 1 - k);
      const victim = eligible[j] as SimInstance;
      eligible[j] = eligible[k] as SimInstance;
      eligible[k] = victim;
      victim.interruptAtMs = now + warning;
      this.hub.publish({
        kind: 'interruption-notice',
        atMs: now,
        vendor: this.vendor,
        instanceId: victim.id,
        offeringId: pool.offering.id,
        zone: pool.zone,
        terminateAtMs: now + warning,
      });
      this.setNext(victim, now + warning, { kind: 'end', reason: 'preempted' });
    }
    return eligible.length - count;
  }

  // ---- scenario -----------------------------------------------------------------------------------------------

  private scheduleScenario(): void {
    for (const n of this.outageScopes.keys()) {
      const outage = this.scenario.outages[n] as SimScenario['outages'][number];
      const start = this.startMs + outage.startMs;
      this.armScenario(`outage-start:${n}`, start);
      this.armScenario(`outage-end:${n}`, start + outage.durationMs);
    }
    for (const [n, change] of this.scenario.priceChanges.entries())
      this.armScenario(`price:${n}`, this.startMs + change.atMs);
    for (const [n, storm] of this.scenario.preemptionStorms.entries())
      if (storm.vendor === this.vendor) this.armScenario(`storm:${n}`, this.startMs + storm.atMs);
  }

  private armScenario(id: string, atMs: number): void {
    const handle = this.clock.setTimer(atMs, () => {
      this.scenarioTimers.delete(id);
      this.scenarioEvent(id);
      this.persistence?.changed();
    });
    this.scenarioTimers.set(id, { atMs, seq: this.clock.lastSeq, handle });
  }

  /** A scenario event (`outage-start:N`, `outage-end:N`, `price:N`: N indexes the scenario's list) happens. */
  private scenarioEvent(id: string): void {
    const [what = '', index = ''] = id.split(':');
    const n = Number(index);
    if (what === 'outage-start' || what === 'outage-end') {
      const scope = this.outageScopes.get(n);
      if (!scope) return;
      if (what === 'outage-end') {
        this.outages.delete(scope);
        return;
      }
      this.outages.add(scope);
      if (this.scenario.outages[n]?.kind === 'zone-failure') this.failScope(scope);
      return;
    }
    if (what === 'storm') {
      const storm = this.scenario.preemptionStorms[n];
      if (storm) this.storm(storm.region);
      return;
    }
    const change = this.scenario.priceChanges[n];
    if (what !== 'price' || !change) return;
    for (const o of this.catalog.values()) {
      if (!matches(change.match, o)) continue;
      const price =
        change.factor !== undefined
          ? micros(Math.round(o.microsPerHour * change.factor))
          : usdToMicros(change.usdPerHour ?? 0);
      this.prices.set(o.id, price);
      this.hub.publish({
        kind: 'price-changed',
        atMs: this.clock.now(),
        vendor: this.vendor,
        offeringId: o.id,
        microsPerHour: price,
      });
    }
  }

  /** A preemption storm: every running spot instance (of the region) is told it will be reclaimed. */
  private storm(region: string | undefined): void {
    const now = this.clock.now();
    const warning = this.settings.interruptionWarningMs;
    for (const instance of this.instances.values()) {
      const offering = instance.pool.offering;
      if (
        offering.capacityType !== 'spot' ||
        instance.state !== 'running' ||
        instance.interruptAtMs !== undefined
      )
        continue;
      if (region !== undefined && offering.region !== region) continue;
      instance.interruptAtMs = now + warning;
      this.hub.publish({
        kind: 'interruption-notice',
        atMs: now,
        vendor: this.vendor,
        instanceId: instance.id,
        offeringId: offering.id,
        zone: instance.pool.zone,
        terminateAtMs: now + warning,
      });
      this.setNext(instance, now + warning, { kind: 'end', reason: 'preempted' });
    }
  }

  private failScope(outage: ActiveOutage): void {
    const victims = [...this.instances.values()].filter(
      (i) =>
        i.state !== 'terminated' &&
        (outage.region === undefined || outage.region === i.pool.offering.region) &&
        (outage.zone === undefined || outage.zone === i.pool.zone),
    );
    for (const instance of victims)
      this.fail(instance, `zone failure in ${outage.zone ?? outage.region ?? this.vendor}`);
  }

  /** An instance dies without being asked: a failure event, then `terminated` with reason `failed`. */
  private fail(instance: SimInstance, message: string): void {
    this.hub.publish({
      kind: 'failure',
      atMs: this.clock.now(),
      vendor: this.vendor,
      instanceId: instance.id,
      region: instance.pool.offering.region,
      zone: instance.pool.zone,
      message,
    });
    this.markTerminated(instance, 'failed');
  }

  private vendorDown(): boolean {
    for (const o of this.outages) if (o.region === undefined) return true;
    return false;
  }

  private regionDown(region: string): boolean {
    if (this.outages.size === 0) return false;
    for (const o of this.outages) if (o.region === undefined || (o.region === region && !o.zone)) return true;
    return false;
  }

  private zoneDown(region: string, zone: string): boolean {
    if (this.outages.size === 0) return false;
    for (const o of this.outages) if (o.region === region && o.zone === zone) return true;
    return false;
  }

  // ---- checks -------------------------------------------------------------------------------------------------

  /** Throttling and vendor-wide outages apply to every call. */
  private admitCall(): void {
    if (this.closed) throw new ProviderUnavailableError(this.vendor, undefined, 'the client is closed');
    if (this.vendorDown())
      throw new ProviderUnavailableError(this.vendor, undefined, 'the API is not answering');
    const wait = this.bucket?.take() ?? 0;
    // The bucket's tokens are state too: a restored cloud throttles as this one would have.
    if (this.bucket) this.persistence?.changed();
    if (wait > 0) throw new ThrottledError(this.vendor, wait, `request rate exceeded; retry in ${wait} ms`);
  }

  private validate(request: ProvisionRequest): Offering {
    if (typeof request !== 'object' || request === null)
      throw new InvalidRequestError(this.vendor, 'request', 'must be an object');
    const offering = this.catalog.get(request.offeringId);
    if (!offering)
      throw new InvalidRequestError(
        this.vendor,
        'offeringId',
        `"${request.offeringId}" is not sold by ${this.vendor}`,
      );
    if (!Number.isSafeInteger(request.count) || request.count < 1 || request.count > MAX_COUNT_PER_CALL)
      throw new InvalidRequestError(
        this.vendor,
        'count',
        `must be an integer from 1 to ${MAX_COUNT_PER_CALL}, got ${request.count}`,
      );
    if (typeof request.idempotencyKey !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(request.idempotencyKey))
      throw new InvalidRequestError(
        this.vendor,
        'idempotencyKey',
        'must be 1–255 printable ASCII characters',
      );
    if (request.zone !== undefined && !this.zonesOf(offering.region).includes(request.zone))
      throw new InvalidRequestError(
        this.vendor,
        'zone',
        `"${request.zone}" is not a zone of ${offering.region}`,
      );
    for (const [key, value] of Object.entries(request.tags ?? {}))
      if (typeof value !== 'string' || key.length === 0 || key.length > 128 || value.length > 256)
        throw new InvalidRequestError(
          this.vendor,
          `tags.${key}`,
          'tags are non-empty keys with string values',
        );
    return offering;
  }

  private checkQuota(offering: Offering, count: number): void {
    const requested = count * offering.gpusPerInstance;
    for (const rule of this.settings.quotas) {
      if (rule.region !== undefined && rule.region !== offering.region) continue;
      if (rule.gpu !== undefined && rule.gpu !== offering.gpu) continue;
      if (rule.capacityType !== undefined && rule.capacityType !== offering.capacityType) continue;
      let used = 0;
      for (const i of this.regionSet(offering.region)) {
        const o = i.pool.offering;
        if (
          (rule.gpu === undefined || rule.gpu === o.gpu) &&
          (rule.capacityType ?? o.capacityType) === o.capacityType
        )
          used += o.gpusPerInstance;
      }
      if (used + requested > rule.maxGpus) {
        const name = `${rule.capacityType ?? 'all'} ${rule.gpu ?? 'GPU'} GPUs in ${offering.region}`;
        throw new QuotaExceededError(
          this.vendor,
          name,
          rule.maxGpus,
          requested,
          `quota "${name}" is ${rule.maxGpus}; ${used} in use, ${requested} requested`,
        );
      }
    }
  }

  /** The zone with the most free capacity that fits all `count` (ties: the first zone), or a capacity error. */
  private chooseZone(offering: Offering, count: number, zone: string | undefined): string {
    let best: string | undefined;
    let bestFree = 0;
    for (const z of zone ? [zone] : this.zonesOf(offering.region)) {
      if (this.zoneDown(offering.region, z)) continue;
      const { free } = this.capacity(offering.id, z);
      if (free >= count && free > bestFree) {
        best = z;
        bestFree = free;
      }
    }
    if (best === undefined)
      throw new InsufficientCapacityError(
        this.vendor,
        offering.id,
        this.settings.capacityRetryAfterMs,
        `not enough capacity for ${count} × ${offering.instanceType} (${offering.capacityType}) in ${zone ?? offering.region}`,
      );
    return best;
  }

  // ---- state --------------------------------------------------------------------------------------------------

  private pool(offering: Offering, zone: string): Pool {
    const key = `${offering.id}@${zone}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = {
        offering,
        zone,
        active: new Set(),
        traces: offering.capacityType === 'spot' ? this.replay.poolTraces(offering, zone) : undefined,
        baseStock: this.baseStock(offering, zone),
        carry: 0,
      };
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Instances of the pool's offering the zone has now (ours included), before subtracting ours. */
  private stock(pool: Pool): number {
    const base = pool.baseStock;
    if (pool.offering.capacityType !== 'spot') return base;
    const availability = pool.traces?.availability;
    if (!availability) return base;
    const value = this.replay.valueAt(availability, this.clock.now());
    if (value === 0 || base === 0) return 0;
    return Math.max(1, Math.round((base * value) / availability.trace.nodes));
  }

  /** The scenario's stock rules for an offering in a zone: the last matching rule wins. */
  private baseStock(offering: Offering, zone: string): number {
    let onDemand = this.scenario.stock.onDemandPerZone;
    let spot = this.scenario.stock.spotPerZone;
    for (const rule of this.scenario.stock.rules) {
      if (!matches(rule.match, offering, zone)) continue;
      onDemand = rule.onDemandPerZone ?? onDemand;
      spot = rule.spotPerZone ?? spot;
    }
    return offering.capacityType === 'spot' ? spot : onDemand;
  }

  private priceOf(offering: Offering): Micros {
    return this.prices.get(offering.id) ?? offering.microsPerHour;
  }

  private regionSet(region: string): Set<SimInstance> {
    let set = this.activeByRegion.get(region);
    if (!set) {
      set = new Set();
      this.activeByRegion.set(region, set);
    }
    return set;
  }

  private newInstanceId(): string {
    for (;;) {
      const id = this.candidateId();
      if (!this.issuedIds.has(id)) {
        this.issuedIds.add(id);
        return id;
      }
    }
  }

  /** The next id drawn (two draws of the ids generator). */
  private candidateId(): string {
    let hex = '';
    for (let i = 0; i < 2; i++) hex += this.ids.nextUint32().toString(16).padStart(8, '0');
    return `${ID_PREFIX[this.vendor] ?? `${this.vendor}-`}${hex}`;
  }

  private publishState(
    instance: SimInstance,
    from: InstanceState | null,
    to: InstanceState,
    reason?: TerminationReason,
  ): void {
    const { offering, zone } = instance.pool;
    this.hub.publish(
      stateChangedEvent(this.clock.now(), offering, { id: instance.id, zone }, from, to, reason),
    );
  }
}

const ID_PREFIX: Readonly<Record<string, string>> = { aws: 'i-', gcp: 'gce-', azure: 'vm-' };

function zoneNames(vendor: string, region: string, settings: VendorSettings): string[] {
  return Array.from({ length: settings.zonesPerRegion }, (_, i) => {
    const letter = String.fromCharCode(97 + i);
    if (vendor === 'aws') return `${region}${letter}`;
    if (vendor === 'azure') return `${region}-${i + 1}`;
    return `${region}-${letter}`;
  });
}

function savedInstance(i: SimInstance, listed: boolean): SavedInstance {
  return {
    id: i.id,
    offeringId: i.pool.offering.id,
    zone: i.pool.zone,
    tags: i.tags,
    idempotencyKey: i.idempotencyKey,
    microsPerHour: i.microsPerHour,
    launchedAtMs: i.launchedAtMs,
    state: i.state,
    ...(i.runningAtMs === undefined ? {} : { runningAtMs: i.runningAtMs }),
    ...(i.terminatedAtMs === undefined ? {} : { terminatedAtMs: i.terminatedAtMs }),
    ...(i.terminationReason === undefined ? {} : { terminationReason: i.terminationReason }),
    ...(i.interruptAtMs === undefined ? {} : { interruptAtMs: i.interruptAtMs }),
    listed,
    ...(i.next ? { next: i.next } : {}),
  };
}

function snapshot(i: SimInstance): Instance {
  return instanceSnapshot(i.pool.offering, { ...i, zone: i.pool.zone });
}
