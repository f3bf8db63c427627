/**
 * The control loop. A tick: observe (offerings, pending actions, expired leases, idle draining instances) →
 * forecast → plan and act → record, one method each. Planning and acting is a failover loop as in SkyPilot:
 * solve, try, block what stocked out, solve again: at most `LAUNCH_ROUNDS` (3) rounds that may launch, and when
 * every one of them was refused, one last round that plans with what is held only (so at most four solves). Ticks
 * never overlap; a tick asked for while one runs is coalesced into one more tick after it. The schedule comes from
 * croner's pattern, driven by the broker's Clock.
 */
import { Cron } from 'croner';
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { groupBy } from '../lib/arrays.ts';
import { type Clock, stopwatch, type TimerHandle } from '../lib/clock.ts';
import type { IdGenerator } from '../lib/ids.ts';
import { usdToMicros } from '../lib/money.ts';
import type { Offering } from '../providers/catalog/offering.ts';
import { planCapacity } from '../solver/plan.ts';
import { bufferTargetGpus } from '../solver/policy.ts';
import type { DemandClass, FleetPool, Plan, PlanInput } from '../solver/types.ts';
import type { ActionRow, Actuator } from './act.ts';
import { isMachine } from './agents/machines.ts';
import type { Database } from './db/open-database.ts';
import { plans } from './db/schema.ts';
import { coveredBy, type Demand, type HeldInstance, netOfHeld } from './demand.ts';
import type { Fleet } from './fleet.ts';
import type { Forecaster } from './forecast.ts';
import type { LeaseService } from './leases.ts';
import type { LiveOfferings } from './live-offerings.ts';
import type { BrokerPolicy } from './policy.ts';
import type { PolicyStore } from './policy-store.ts';
import type { QuotaBook } from './quota-book.ts';
import type { UnavailableCache } from './unavailable-cache.ts';

/** Rounds of a tick that may launch; a last hold-only round follows when all of them were refused. */
const LAUNCH_ROUNDS = 3;
/** How long a shortfall trigger waits, so a burst of lease requests leads to one tick. */
const TRIGGER_DEBOUNCE_MS = 250;

/** A plan's row as `record` writes it (and as a what-if shows it, unwritten). */
export type PlanRow = typeof plans.$inferInsert;

/** What the loop would plan now under another policy or demand (`ControlLoop.whatIf`). */
export interface WhatIf {
  /** The demand classes solved for: the forecast (or the override) as a tick passes it to the solver. */
  readonly demand: DemandClass[];
  /** Undefined when there is nothing to plan (no demand and no fleet: an idle tick). */
  readonly plan: Plan | undefined;
  /** The row a tick would record for that plan, under the id `what-if`. */
  readonly row: PlanRow | undefined;
}

export interface TickReport {
  readonly planId: string;
  readonly atMs: number;
  readonly policyVersion: number;
  /** `idle`: no demand and no fleet, so nothing was solved and no plan recorded. */
  readonly status: Plan['status'] | 'idle';
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
  readonly offerings: LiveOfferings;
  readonly fleet: Fleet;
  readonly leases: LeaseService;
  readonly policies: PolicyStore;
  readonly forecaster: Forecaster;
  readonly unavailable: UnavailableCache;
  readonly quotas: QuotaBook;
  readonly actuator: Actuator;
  readonly logger: Logger;
  /** Every tick's report, as it ends (for metrics). */
  readonly onTick?: (report: TickReport) => void;
  /** Whether this replica may run the loop (PostgreSQL advisory lock). */
  readonly tryLeadership: () => Promise<boolean>;
  /** What is asked for now: open leases and the runtime's containers, running and queued. */
  readonly demand: () => Demand[];
  /** Runs first in every tick (spend limits). */
  readonly observe?: () => Promise<void>;
  /** Called when this replica becomes the leader, before its first tick: catch up with the previous leader. */
  readonly onLeadership?: () => Promise<void>;
}

export class ControlLoop {
  private running: Promise<TickReport> | undefined;
  private readonly observers = new Set<(report: TickReport) => void | Promise<void>>();
  private queued: Promise<TickReport> | undefined;
  private scheduled: TimerHandle | undefined;
  private debounce: TimerHandle | undefined;
  private insertPlan: ReturnType<typeof prepareInsertPlan> | undefined;
  /**
   * The last plan a solve made, passed back to the next one (a warm re-plan, solver/warm.ts): the next tick after a
   * small change of demand or fleet re-solves only what the change touched. A plan of another shape is ignored.
   */
  private lastPlan: Plan | undefined;
  /** The plan schedule as last parsed. */
  private schedule: { readonly pattern: string; readonly cron: Cron } | undefined;
  private stopped = true;
  private closed = false;
  last: TickReport | undefined;
  /** The warm buffer per GPU type the latest tick planned for (from its first period's demand). */
  bufferTargets: ReadonlyMap<string, number> = new Map();
  leader = false;

  constructor(private readonly o: ControlLoopOptions) {}

  /** Writes a plan's row (the statement is built once: there is one per tick). */
  private recordPlan(row: PlanRow): Promise<unknown> {
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
    const { offerings } = this.o;
    return coveredBy(
      this.o.demand(),
      this.o.fleet.capacity().map((i) => ({
        gpu: i.gpu,
        regionGroup: isMachine(i) ? i.region : offerings.regionGroupOf(i.offeringId),
        gpusPerInstance: i.gpusPerInstance,
      })),
    );
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

  /**
   * Calls `observer` after every tick with its report; the tick counts as in flight (busy) until an async observer
   * settles, so a simulation's virtual clock does not move on while it reacts. Returns the unsubscribe.
   */
  onTickDone(observer: (report: TickReport) => void | Promise<void>): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** A tick is running or queued (or its observers are still reacting to it). */
  get busy(): boolean {
    return this.running !== undefined || this.queued !== undefined;
  }

  /** Settles any tick in flight (for shutdown and tests). */
  async idle(): Promise<void> {
    while (this.running || this.queued) await (this.queued ?? this.running)?.catch(() => undefined);
  }

  private startTick(): Promise<TickReport> {
    this.queued = undefined;
    this.running = this.runTick()
      .then(async (report) => {
        for (const observer of [...this.observers]) await observer(report);
        return report;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async scheduleNext(): Promise<void> {
    if (this.stopped) return;
    // A follower reads the schedule the leader's operators set, so that it tries for the leadership as often.
    if (!this.leader) this.o.policies.forget();
    const { policy } = await this.o.policies.current();
    // One parsed schedule while the pattern stays (parsing it at every tick was most of a tick's garbage).
    if (this.schedule?.pattern !== policy.planSchedule)
      this.schedule = { pattern: policy.planSchedule, cron: new Cron(policy.planSchedule, { paused: true }) };
    const next = this.schedule.cron.nextRun(new Date(this.o.clock.now()));
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
    const { policy, version } = await this.o.policies.current();
    const planId = this.o.ids.next('plan');
    const observed = await this.observe(planId);
    const demand = this.forecast(policy);
    this.bufferTargets = bufferTargetGpus(policy, demand);
    const acted = await this.planAndAct(planId, policy, demand);
    const leasesServed = observed.leasesServed + (await this.o.leases.servePending());
    if (acted.plan) await this.record(planId, version, demand, acted);
    const plan = acted.plan;
    this.last = {
      planId,
      atMs: this.o.clock.now(),
      policyVersion: version,
      status: plan?.status ?? 'idle',
      usdPerHour: plan?.cost.usdPerHour ?? 0,
      solveMs: plan?.solveMs ?? 0,
      tickMs: elapsed(),
      rounds: acted.rounds,
      provisioned: acted.provisioned,
      terminated: observed.terminated + acted.terminated,
      drained: acted.drained,
      stockedOut: acted.stockOuts,
      unmetGpus: plan?.unmetGpus ?? 0,
      bufferShortfallGpus: plan?.bufferShortfallGpus ?? 0,
      leasesServed,
    };
    this.o.logger.info(this.last, 'tick');
    this.o.onTick?.(this.last);
    return this.last;
  }

  /**
   * Observe: read the offerings, finish what a crash or an outage left pending, end expired leases, let idle
   * drained instances go, serve what waits.
   */
  private async observe(planId: string): Promise<{ terminated: number; leasesServed: number }> {
    const { fleet, leases, actuator } = this.o;
    await this.o.offerings.refresh();
    for (const action of await actuator.pending())
      await (action.kind === 'provision' ? actuator.runProvision(action) : actuator.runTerminate(action));
    await leases.expire();
    await this.o.observe?.();
    let terminated = 0;
    for (const [vendor, group] of groupBy(fleet.idleDraining(), (i) => i.vendor)) {
      await actuator.terminate(planId, `${planId}-drained-${vendor}`, vendor, group);
      terminated += group.length;
    }
    return { terminated, leasesServed: await leases.servePending() };
  }

  /** Forecast: records the demand seen now, then forecasts it over the horizon (see `solverDemand`). */
  private forecast(policy: BrokerPolicy): DemandClass[] {
    const { clock, offerings } = this.o;
    this.o.forecaster.observe(clock.now(), this.o.demand(), policy);
    return this.solverDemand(policy, this.o.forecaster.forecast(clock.now(), policy, offerings.gpuTypes()));
  }

  /**
   * A forecast as the solver takes it. Instances held for a GPU type and region group that nothing asks for are
   * planned against zero demand, so that they scale down by policy.
   */
  private solverDemand(policy: BrokerPolicy, forecast: readonly DemandClass[]): DemandClass[] {
    const { fleet, offerings } = this.o;
    const demand = [...forecast];
    const machines: HeldInstance[] = [];
    for (const i of fleet.all()) {
      if (isMachine(i)) {
        if (i.state === 'running')
          machines.push({ gpu: i.gpu, regionGroup: i.region, gpusPerInstance: i.gpusPerInstance });
        continue;
      }
      const group = offerings.regionGroupOf(i.offeringId) ?? policy.defaultRegionGroup;
      if (!demand.some((d) => d.gpu === i.gpu && d.regionGroup === group))
        demand.push({
          gpu: i.gpu,
          regionGroup: group,
          gangSize: 1,
          gpus: Array(policy.horizonPeriods).fill(0),
        });
    }
    // Machines of your own are capacity already there: what they cover is not bought.
    return netOfHeld(demand, machines);
  }

  /**
   * What the loop would plan now under `policy`, with `demand` (forecast classes) in place of the forecast when
   * given: a tick's forecast and first solve, through the same `solverDemand` and `solveInput`, with nothing
   * observed, launched or recorded. The forecaster is asked, not told: it records nothing.
   */
  async whatIf(policy: BrokerPolicy, version: number, demand?: readonly DemandClass[]): Promise<WhatIf> {
    const { clock, offerings } = this.o;
    const planned = this.solverDemand(
      policy,
      demand ?? this.o.forecaster.forecast(clock.now(), policy, offerings.gpuTypes()),
    );
    if (planned.length === 0) return { demand: planned, plan: undefined, row: undefined };
    const plan = await planCapacity(await this.solveInput(policy, planned, false));
    const row = this.planRow('what-if', version, planned, { plan, rounds: 1, stockOuts: [] });
    return { demand: planned, plan, row };
  }

  /** Plan and act: the failover rounds (see the header). */
  private async planAndAct(planId: string, policy: BrokerPolicy, demand: DemandClass[]): Promise<Acted> {
    const { offerings, actuator } = this.o;
    const acted: Acted = {
      plan: undefined,
      rounds: 0,
      provisioned: 0,
      terminated: 0,
      drained: 0,
      stockOuts: [],
    };
    if (demand.length === 0) return acted;
    for (;;) {
      acted.rounds++;
      const input = await this.solveInput(policy, demand, acted.rounds > LAUNCH_ROUNDS);
      const plan = await planCapacity(this.lastPlan ? { ...input, previous: this.lastPlan } : input);
      this.lastPlan = plan;
      acted.plan = plan;
      const roundStockOuts: string[] = [];
      let quotaRefused = false;
      for (const [n, action] of plan.actions.entries()) {
        const offering = offerings.get(action.offeringId);
        if (!offering || action.provision <= 0) continue;
        const launch = await actuator.launch(
          planId,
          `${planId}-r${acted.rounds}-${n}`,
          offering,
          action.provision,
        );
        acted.provisioned += launch.launched;
        if (launch.stockedOut) roundStockOuts.push(offering.id);
        if (launch.quotaRefusal) {
          this.o.quotas.learn(offering, launch.quotaRefusal);
          quotaRefused = true;
        }
      }
      // Make before break: a plan's terminations may be half of a move to cheaper capacity, so they run only
      // once every launch of the round went through. Otherwise the next round re-plans with the whole fleet
      // still there.
      if (roundStockOuts.length === 0 && !quotaRefused) {
        for (const [n, action] of plan.actions.entries()) {
          const offering = offerings.get(action.offeringId);
          if (!offering || action.terminate <= 0) continue;
          const result = await actuator.scaleDown(
            planId,
            `${planId}-r${acted.rounds}-${n}`,
            offering,
            action.terminate,
          );
          acted.terminated += result.terminated;
          acted.drained += result.drained;
        }
        return acted;
      }
      for (const id of roundStockOuts) this.o.unavailable.block(id, policy.unavailableTtlMs);
      acted.stockOuts.push(...roundStockOuts);
      if (acted.rounds > LAUNCH_ROUNDS) return acted;
    }
  }

  /**
   * One solve's input: the offerings on sale less those blocked (stock-outs, unavailable; all of them in a
   * hold-only round), the fleet with the launches still in flight, and the quotas within reach.
   */
  private async solveInput(
    policy: BrokerPolicy,
    demand: DemandClass[],
    holdOnly: boolean,
  ): Promise<PlanInput> {
    const { fleet, offerings, actuator } = this.o;
    const quotes = offerings.all();
    const unavailable = holdOnly
      ? quotes.map((q) => q.id)
      : [
          ...new Set([
            ...this.o.unavailable.blocked(),
            ...quotes.filter((q) => !q.available).map((q) => q.id),
          ]),
        ];
    // Launches whose outcome is unknown (the provider did not answer; repeated with their key at each tick) count
    // as capacity on its way: planning around them would launch the same capacity again, once per tick of an
    // outage.
    const pools = withLaunchesInFlight(fleet.pools(), await actuator.pending());
    return {
      offerings: quotes,
      demand,
      policy,
      fleet: pools,
      unavailable,
      quotas: this.o.quotas.forPlan(demand, policy, heldByOffering(offerings, pools)),
    };
  }

  /** Record: the plan with its inputs, result and explanation, for "why did we buy this?". */
  private async record(planId: string, version: number, demand: DemandClass[], acted: Acted): Promise<void> {
    await this.recordPlan(this.planRow(planId, version, demand, { ...acted, plan: acted.plan as Plan }));
  }

  /** A plan's row: its inputs, result and explanation. */
  private planRow(
    planId: string,
    version: number,
    demand: DemandClass[],
    acted: Pick<Acted, 'rounds' | 'stockOuts'> & { plan: Plan },
  ): PlanRow {
    const { plan } = acted;
    return {
      id: planId,
      createdAt: this.o.clock.now(),
      policyVersion: version,
      status: plan.status,
      backend: plan.backend,
      objective: { objective: plan.objective, bound: plan.bound, gap: plan.gap, cost: plan.cost },
      microsPerHour: usdToMicros(plan.cost.usdPerHour),
      solveMs: plan.solveMs,
      inputs: {
        demand,
        fleet: this.o.fleet.pools().map(({ offeringId, count }) => ({ offeringId, count })),
        unavailable: this.o.unavailable.blocked(),
        offerings: this.o.offerings.all().length,
      },
      result: {
        targets: plan.targets,
        actions: plan.actions,
        pools: plan.pools,
        unmet: plan.unmet,
        rounds: acted.rounds,
        stockOuts: acted.stockOuts,
      },
      explanation: plan.explanation,
    };
  }
}

/** What a tick's plan-and-act did. */
interface Acted {
  /** The last round's plan; undefined when there was nothing to plan. */
  plan: Plan | undefined;
  rounds: number;
  provisioned: number;
  terminated: number;
  drained: number;
  stockOuts: string[];
}

/** The fleet's pools with the instances of provision actions still pending added (young: not to stop yet). */
function withLaunchesInFlight(pools: FleetPool[], pending: readonly ActionRow[]): FleetPool[] {
  const launches = pending.filter((a) => a.kind === 'provision' && a.status === 'pending');
  if (launches.length === 0) return pools;
  const byOffering = new Map(
    pools.map((p) => [p.offeringId, { ...p, instanceAgesMs: [...(p.instanceAgesMs ?? [])] }]),
  );
  for (const action of launches) {
    const pool = byOffering.get(action.offeringId) ?? {
      offeringId: action.offeringId,
      count: 0,
      instanceAgesMs: [],
    };
    pool.count += action.count;
    pool.instanceAgesMs.push(...Array(action.count).fill(0));
    byOffering.set(action.offeringId, pool);
  }
  return [...byOffering.values()];
}

/** Instances held per offering, for the quotas' reach. */
function heldByOffering(
  offerings: LiveOfferings,
  pools: readonly { offeringId: string; count: number }[],
): { offering: Offering; count: number }[] {
  return pools.flatMap((p) => {
    const offering = offerings.get(p.offeringId);
    return offering ? [{ offering, count: p.count }] : [];
  });
}

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
