/**
 * The control loop. A tick: observe (offerings, pending actions, expired leases, idle draining instances) →
 * forecast → solve → act → record. Acting is a failover loop as in SkyPilot: solve, try, block what stocked out,
 * solve again (at most three rounds). Ticks never overlap; a tick asked for while one runs is coalesced into one
 * more tick after it. The schedule comes from croner's pattern, driven by the broker's Clock.
 */
import { Cron } from 'croner';
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { type Clock, stopwatch, type TimerHandle } from '../lib/clock.ts';
import type { IdGenerator } from '../lib/ids.ts';
import { usdToMicros } from '../lib/money.ts';
import type { Offering } from '../providers/catalog/offering.ts';
import type { OfferingQuote, Provider } from '../providers/provider.ts';
import { QuotaExceededError } from '../providers/provider-errors.ts';
import { planCapacity } from '../solver/plan.ts';
import type { Plan } from '../solver/types.ts';
import { type Actuator, stockedOut } from './act.ts';
import type { Database } from './db/open-database.ts';
import { plans } from './db/schema.ts';
import type { Fleet, LiveInstance } from './fleet.ts';
import type { Forecaster } from './forecast.ts';
import type { LeaseService, OpenDemand } from './leases.ts';
import type { PolicyStore } from './policy-store.ts';
import type { QuotaBook } from './quota-book.ts';
import type { UnavailableCache } from './unavailable-cache.ts';

const MAX_ROUNDS = 3;
/**
 * Most instances one launch call asks for. A provider launches all or nothing in one zone, so a plan's 300
 * instances of one offering go out as batches: a stock-out then costs one batch, and what was had is kept.
 */
export const LAUNCH_BATCH = 16;
/** How long a shortfall trigger waits, so a burst of lease requests leads to one tick. */
const TRIGGER_DEBOUNCE_MS = 250;

export interface TickReport {
  readonly planId: string;
  readonly atMs: number;
  readonly policyVersion: number;
  readonly status: Plan['status'];
  readonly usdPerHour: number;
  readonly solveMs: number;
  readonly tickMs: number;
  readonly rounds: number;
  readonly provisioned: number;
  readonly terminated: number;
  readonly drained: number;
  readonly stockedOut: string[];
  readonly unmetGpus: number;
  readonly bufferShortfallGpus: number;
  readonly leasesServed: number;
}

export interface ControlLoopOptions {
  readonly db: Database;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly providers: ReadonlyMap<string, Provider>;
  readonly fleet: Fleet;
  readonly leases: LeaseService;
  readonly policies: PolicyStore;
  readonly forecaster: Forecaster;
  readonly unavailable: UnavailableCache;
  readonly quotas: QuotaBook;
  readonly actuator: Actuator;
  readonly logger: Logger;
  /** Whether this replica may run the loop (PostgreSQL advisory lock). */
  readonly tryLeadership: () => Promise<boolean>;
  /** Demand beyond open leases: the runtime's containers, running and queued. */
  readonly extraDemand?: () => OpenDemand[];
  /** Runs first in every tick (spend limits). */
  readonly observe?: () => Promise<void>;
  /** Called when this replica becomes the leader, before its first tick: catch up with the previous leader. */
  readonly onLeadership?: () => Promise<void>;
}

export class ControlLoop {
  private quotes: OfferingQuote[] = [];
  private running: Promise<TickReport> | undefined;
  private queued: Promise<TickReport> | undefined;
  private scheduled: TimerHandle | undefined;
  private debounce: TimerHandle | undefined;
  private insertPlan: ReturnType<typeof prepareInsertPlan> | undefined;
  private stopped = true;
  private closed = false;
  last: TickReport | undefined;
  leader = false;

  constructor(private readonly o: ControlLoopOptions) {}

  /** Offerings as last seen from the providers (the catalog the plan and the lease checks use). */
  offerings(): readonly Offering[] {
    return this.quotes;
  }

  /** Reads every provider's offerings (and quotas, where it publishes them); one that does not answer keeps its last. */
  async refreshOfferings(): Promise<void> {
    await Promise.all(
      [...this.o.providers.values()].map(async (p) => {
        if (!p.quotas) return;
        try {
          this.o.quotas.publish(p.vendor, await p.quotas());
        } catch (error) {
          this.o.logger.warn({ vendor: p.vendor, err: error }, 'quotas unavailable; keeping the last list');
        }
      }),
    );
    const lists = await Promise.all(
      [...this.o.providers.values()].map(async (p) => {
        try {
          return await p.offerings();
        } catch (error) {
          this.o.logger.warn(
            { vendor: p.vendor, err: error },
            'offerings unavailable; keeping the last list',
          );
          return this.quotes.filter((q) => q.vendor === p.vendor);
        }
      }),
    );
    this.quotes = lists.flat();
  }

  /** Writes a plan's row (the statement is built once: there is one per tick). */
  private recordPlan(row: typeof plans.$inferInsert): Promise<unknown> {
    this.insertPlan ??= prepareInsertPlan(this.o.db);
    return this.insertPlan.execute({
      ...row,
      objective: JSON.stringify(row.objective),
      inputs: JSON.stringify(row.inputs),
      result: JSON.stringify(row.result),
      explanation: JSON.stringify(row.explanation),
    });
  }

  /** Runs one tick now (or, when one is running, one more right after it). */
  tick(): Promise<TickReport> {
    if (this.running) {
      this.queued ??= this.running.then(
        () => this.startTick(),
        () => this.startTick(),
      );
      return this.queued;
    }
    return this.startTick();
  }

  /** Starts the schedule. */
  start(): void {
    this.stopped = false;
    void this.scheduleNext();
  }

  stop(): void {
    this.stopped = true;
    this.closed = true;
    this.scheduled?.cancel();
    this.debounce?.cancel();
  }

  /**
   * Asks for a tick soon (debounced): a lease or a container could not be placed, or an instance was lost. The
   * tick runs only if the fleet, counting instances still booting, no longer covers what is asked for now; when it
   * does, the shortfall is instances on their way and a new plan would change nothing (the scheduled tick still
   * restores the warm buffer). Without this, a busy runtime re-plans every time a container waits for a boot.
   */
  trigger(): void {
    if (this.closed || this.debounce) return;
    this.debounce = this.o.clock.setTimer(this.o.clock.now() + TRIGGER_DEBOUNCE_MS, () => {
      this.debounce = undefined;
      if (this.coveredByFleet()) {
        this.triggersSkipped++;
        return;
      }
      void this.tickIfLeader();
    });
  }

  /** Triggers that found the fleet already covering the demand, so ran no tick. */
  triggersSkipped = 0;

  /**
   * Whether the instances held (booting or running; not being stopped, drained or reclaimed) cover the open
   * demand: per GPU type and region group in total, and per gang size in instances big enough for whole gangs.
   */
  coveredByFleet(): boolean {
    const demand = [...this.o.leases.openDemand(), ...(this.o.extraDemand?.() ?? [])];
    if (demand.length === 0) return true;
    const groupOf = new Map(this.quotes.map((q) => [q.id, q.regionGroup]));
    const held = this.o.fleet.capacity();
    const asked = new Map<string, number>();
    for (const d of demand) {
      const key = `${d.gpu}|${d.regionGroup}`;
      asked.set(key, (asked.get(key) ?? 0) + d.gpus);
      if (d.gangSize > 1) {
        let whole = 0;
        for (const i of held)
          if (i.gpu === d.gpu && groupOf.get(i.offeringId) === d.regionGroup)
            whole += Math.floor(i.gpusPerInstance / d.gangSize) * d.gangSize;
        if (whole < d.gpus) return false;
      }
    }
    const have = new Map<string, number>();
    for (const i of held) {
      const key = `${i.gpu}|${groupOf.get(i.offeringId)}`;
      have.set(key, (have.get(key) ?? 0) + i.gpusPerInstance);
    }
    for (const [key, gpus] of asked) if ((have.get(key) ?? 0) < gpus) return false;
    return true;
  }

  /**
   * Takes the leadership if free, or confirms it is still held. Only the leader ticks and acts; on gaining it, the
   * replica first catches up (`onLeadership`) with what the previous leader did.
   */
  async claimLeadership(): Promise<boolean> {
    const was = this.leader;
    const now = await this.o.tryLeadership();
    if (now && !was) {
      this.o.actuator.forgetPending();
      await this.o.onLeadership?.();
    }
    this.leader = now;
    return now;
  }

  /** Settles any tick in flight (for shutdown and tests). */
  async idle(): Promise<void> {
    while (this.running || this.queued) await (this.queued ?? this.running)?.catch(() => undefined);
  }

  private startTick(): Promise<TickReport> {
    this.queued = undefined;
    this.running = this.runTick().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async scheduleNext(): Promise<void> {
    if (this.stopped) return;
    // A follower reads the schedule the leader's operators set, so that it tries for the leadership as often.
    if (!this.leader) this.o.policies.forget();
    const { policy } = await this.o.policies.current();
    const next = new Cron(policy.planSchedule, { paused: true }).nextRun(new Date(this.o.clock.now()));
    if (!next || this.stopped) return;
    this.scheduled = this.o.clock.setTimer(next.getTime(), () => {
      void this.tickIfLeader().finally(() => this.scheduleNext());
    });
  }

  private async tickIfLeader(): Promise<void> {
    try {
      if (await this.claimLeadership()) await this.tick();
    } catch (error) {
      this.o.logger.error({ err: error }, 'tick failed');
    }
  }

  private async runTick(): Promise<TickReport> {
    const elapsed = stopwatch();
    const { clock, fleet, leases, actuator } = this.o;
    const { policy, version } = await this.o.policies.current();
    const planId = this.o.ids.next('plan');
    await this.refreshOfferings();

    // Observe: finish what a crash or an outage left pending, end expired leases, let idle drained instances go.
    for (const action of await actuator.pending())
      await (action.kind === 'provision' ? actuator.runProvision(action) : actuator.runTerminate(action));
    await leases.expire();
    await this.o.observe?.();
    let terminated = 0;
    const idle = fleet.idleDraining();
    for (const [vendor, group] of groupBy(idle, (i) => i.vendor)) {
      await actuator.terminate(planId, `${planId}-drained-${vendor}`, vendor, group);
      terminated += group.length;
    }
    let leasesServed = await leases.servePending();

    // Forecast and solve; act; block stock-outs and solve again.
    const gpuTypes = [...new Set(this.quotes.map((q) => q.gpu))];
    this.o.forecaster.observe(
      clock.now(),
      [...leases.openDemand(), ...(this.o.extraDemand?.() ?? [])],
      policy,
    );
    const demand = this.o.forecaster.forecast(clock.now(), policy, gpuTypes);
    // Nothing asked for: the instances still held are planned against zero demand, so they scale down by policy.
    for (const i of fleet.all()) {
      const group = this.quotes.find((q) => q.id === i.offeringId)?.regionGroup ?? policy.defaultRegionGroup;
      if (!demand.some((d) => d.gpu === i.gpu && d.regionGroup === group))
        demand.push({
          gpu: i.gpu,
          regionGroup: group,
          gangSize: 1,
          gpus: Array(policy.horizonPeriods).fill(0),
        });
    }
    let plan: Plan | undefined;
    let provisioned = 0;
    let drained = 0;
    let rounds = 0;
    const stockOuts: string[] = [];
    for (; demand.length > 0 && rounds <= MAX_ROUNDS; ) {
      rounds++;
      // Every round refused a launch: a last round plans with what is held only (no offering can grow), so the
      // capacity the fleet no longer needs still goes, while the moves that found no stock wait for the next tick.
      const holdOnly = rounds > MAX_ROUNDS;
      const unavailable = holdOnly
        ? this.quotes.map((q) => q.id)
        : [
            ...new Set([
              ...this.o.unavailable.blocked(),
              ...this.quotes.filter((q) => !q.available).map((q) => q.id),
            ]),
          ];
      const pools = fleet.pools();
      plan = await planCapacity({
        offerings: this.quotes,
        demand,
        policy,
        fleet: pools,
        unavailable,
        quotas: this.o.quotas.forPlan(demand, policy, heldByOffering(this.quotes, pools)),
      });
      const roundStockOuts: string[] = [];
      let quotaRefused = false;
      const offeringOf = (offeringId: string) => this.quotes.find((q) => q.id === offeringId);
      for (const [n, action] of plan.actions.entries()) {
        const offering = offeringOf(action.offeringId);
        if (!offering || action.provision <= 0) continue;
        const launch = await this.launch(planId, `${planId}-r${rounds}-${n}`, offering, action.provision);
        provisioned += launch.launched;
        if (launch.stockedOut) roundStockOuts.push(offering.id);
        quotaRefused ||= launch.quotaRefused;
      }
      // Make before break: a plan's terminations may be half of a move to cheaper capacity, so they run only
      // once every launch of the round went through. Otherwise the next round re-plans with the whole fleet
      // still there.
      if (roundStockOuts.length === 0 && !quotaRefused) {
        for (const [n, action] of plan.actions.entries()) {
          const offering = offeringOf(action.offeringId);
          if (!offering || action.terminate <= 0) continue;
          const result = await this.scaleDown(
            planId,
            `${planId}-r${rounds}-${n}`,
            offering,
            action.terminate,
          );
          terminated += result.terminated;
          drained += result.drained;
        }
        break;
      }
      for (const id of roundStockOuts) this.o.unavailable.block(id, policy.unavailableTtlMs);
      stockOuts.push(...roundStockOuts);
    }
    leasesServed += await leases.servePending();

    // No demand and no fleet: nothing was solved, so there is no plan to record.
    if (plan)
      await this.recordPlan({
        id: planId,
        createdAt: clock.now(),
        policyVersion: version,
        status: plan.status,
        backend: plan.backend,
        objective: { objective: plan.objective, bound: plan.bound, gap: plan.gap, cost: plan.cost },
        microsPerHour: usdToMicros(plan.cost.usdPerHour),
        solveMs: plan.solveMs,
        inputs: {
          demand,
          fleet: fleet.pools().map(({ offeringId, count }) => ({ offeringId, count })),
          unavailable: this.o.unavailable.blocked(),
          offerings: this.quotes.length,
        },
        result: {
          targets: plan.targets,
          actions: plan.actions,
          pools: plan.pools,
          unmet: plan.unmet,
          rounds,
          stockOuts,
        },
        explanation: plan.explanation,
      });
    this.last = {
      planId,
      atMs: clock.now(),
      policyVersion: version,
      status: plan?.status ?? 'optimal',
      usdPerHour: plan?.cost.usdPerHour ?? 0,
      solveMs: plan?.solveMs ?? 0,
      tickMs: elapsed(),
      rounds,
      provisioned,
      terminated,
      drained,
      stockedOut: stockOuts,
      unmetGpus: plan?.unmetGpus ?? 0,
      bufferShortfallGpus: plan?.bufferShortfallGpus ?? 0,
      leasesServed,
    };
    this.o.logger.info(this.last, 'tick');
    return this.last;
  }

  /**
   * Launches `count` instances of an offering in batches of at most `LAUNCH_BATCH` (each its own action and key),
   * until all are launched or the provider refuses one: a stock-out (the offering is then blocked by the caller)
   * or a quota (learned here, so that the next round's plan respects it).
   */
  private async launch(
    planId: string,
    key: string,
    offering: Offering,
    count: number,
  ): Promise<{ launched: number; stockedOut: boolean; quotaRefused: boolean }> {
    let launched = 0;
    for (let batch = 0; launched < count; batch++) {
      const size = Math.min(LAUNCH_BATCH, count - launched);
      const row = await this.o.actuator.provision(
        planId,
        batch === 0 ? key : `${key}-b${batch}`,
        offering.vendor,
        offering.id,
        size,
      );
      if (row.status === 'done') {
        launched += size;
        continue;
      }
      // Stock-outs are routine (the offering is blocked and the plan moves on); other refusals deserve a look.
      if (row.status === 'failed')
        this.o.logger[stockedOut(row) ? 'info' : 'warn'](
          { offeringId: offering.id, count: size, error: row.error },
          'launch refused',
        );
      const quotaRefusal = row.refusedBy instanceof QuotaExceededError ? row.refusedBy : undefined;
      if (quotaRefusal) this.o.quotas.learn(offering, quotaRefusal);
      return { launched, stockedOut: stockedOut(row), quotaRefused: quotaRefusal !== undefined };
    }
    return { launched, stockedOut: false, quotaRefused: false };
  }

  /**
   * Takes `count` instances of an offering out of the fleet: idle ones are terminated (pending before running,
   * youngest first); ones serving leases are drained, never killed under their leases.
   */
  private async scaleDown(
    planId: string,
    key: string,
    offering: Offering,
    count: number,
  ): Promise<{ terminated: number; drained: number }> {
    const candidates = this.o.fleet
      .capacity()
      .filter((i) => i.offeringId === offering.id)
      .sort(
        (a, b) =>
          a.allocated.size - b.allocated.size ||
          Number(a.state === 'running') - Number(b.state === 'running') ||
          b.launchedAt - a.launchedAt ||
          (a.id < b.id ? -1 : 1),
      )
      .slice(0, count);
    const idle = candidates.filter((i) => i.allocated.size === 0);
    const busy = candidates.filter((i) => i.allocated.size > 0);
    if (idle.length > 0) await this.o.actuator.terminate(planId, `${key}-terminate`, offering.vendor, idle);
    await this.o.fleet.markDraining(busy.map((i) => i.id));
    return { terminated: idle.length, drained: busy.length };
  }
}

/** Instances held per offering, for the quotas' reach. */
function heldByOffering(
  quotes: readonly OfferingQuote[],
  pools: readonly { offeringId: string; count: number }[],
): { offering: Offering; count: number }[] {
  const byId = new Map(quotes.map((q) => [q.id, q]));
  return pools.flatMap((p) => {
    const offering = byId.get(p.offeringId);
    return offering ? [{ offering, count: p.count }] : [];
  });
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}

export type { LiveInstance };

function prepareInsertPlan(db: Database) {
  const p = (name: keyof typeof plans.$inferInsert) => sql.placeholder(name);
  const json = (name: keyof typeof plans.$inferInsert) => sql`${p(name)}::jsonb`;
  return db
    .insert(plans)
    .values({
      id: p('id'),
      createdAt: p('createdAt'),
      policyVersion: p('policyVersion'),
      status: p('status'),
      backend: p('backend'),
      objective: json('objective'),
      microsPerHour: p('microsPerHour'),
      solveMs: p('solveMs'),
      inputs: json('inputs'),
      result: json('result'),
      explanation: json('explanation'),
    })
    .prepare('plan_insert');
}
