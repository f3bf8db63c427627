/**
 * One simulation run: one workload under one policy, on a virtual clock, through the real broker (control loop,
 * leases, policies, billing on an in-memory PGlite), its serverless runtime and meter, and the simulated clouds
 * (`providers/sim`: provisioning delays, stock, quotas, spot stock-outs and preemptions from the real traces).
 * Only the containers are simulated (`sim-executor.ts`). Requests arrive lazily from the (scaled) workload; calls
 * go to the runtime, leases to the lease service. Every 5 simulated minutes a sample is taken and the invariants
 * are checked; at the end the meter's usage is checked against the executor's record, and the billing code's
 * cost report gives the cost and GPU-hours. The same inputs and seed give the same result (wall times aside).
 */
import { createHash } from 'node:crypto';
import { costReport } from '../../broker/billing/costs.ts';
import { usageGroups } from '../../broker/billing/usage-groups.ts';
import { BrokerCore } from '../../broker/broker.ts';
import { openDatabase } from '../../broker/db/open-database.ts';
import { instances } from '../../broker/db/schema.ts';
import type { BrokerPolicy } from '../../broker/policy.ts';
import type { Principal } from '../../broker/tokens.ts';
import { VirtualClock } from '../../lib/clock.ts';
import { ValidationError } from '../../lib/errors.ts';
import { microsToUsd, usdToMicros } from '../../lib/money.ts';
import { Random } from '../../lib/random.ts';
import { WallAccount } from '../../lib/stopwatch.ts';
import { loadCatalog } from '../../providers/catalog/load-catalog.ts';
import type { Offering } from '../../providers/catalog/offering.ts';
import type { SimScenario, SimScenarioInput } from '../../providers/sim/scenario.ts';
import { createSimClouds } from '../../providers/sim/sim-clouds.ts';
import { parseFunctionOptions } from '../../runtime/function-spec.ts';
import { planCapacity } from '../../solver/plan.ts';
import { planningPolicy } from '../../solver/policy.ts';
import { coldStartSampler } from '../cold-starts.ts';
import { type SimPolicy, staticPeakFirstPlan, staticPeakLaterPlans } from '../policies.ts';
import { type PolicyResult, type TimeSeries, waitCaveat } from '../results.ts';
import { type SimCallArgs, SimExecutor } from '../sim-executor.ts';
import { type ScaleOptions, scaledDurationMs, scaledRequests } from '../workloads/scale.ts';
import { HOUR_MS, type Workload } from '../workloads/workload.ts';
import { ArrivalFeed } from './arrivals.ts';
import { cumulativeCostUsd } from './cost-series.ts';
import { driveUntil } from './drive.ts';
import { crashAfterMs, type FaultPlan, injectedOutages, injectedStorms, NO_FAULTS } from './faults.ts';
import { InvariantLog, type InvariantName } from './invariants.ts';
import { LeaseDriver } from './lease-driver.ts';
import { type ContainerRecord, SimMetrics } from './metrics.ts';
import { peakGpus } from './peak.ts';

export interface RunOptions {
  readonly workload: Workload;
  readonly policy: SimPolicy;
  readonly seed: number;
  /** ×N overlay of shifted copies (default 1). */
  readonly scale?: number;
  /** Arrival-time divisor (default 1). */
  readonly speed?: number;
  /** Simulated hours (default: the whole scaled trace). */
  readonly hours?: number;
  /** What the simulated clouds do differently from their defaults (quotas, stock, spot); its seed is replaced. */
  readonly scenario?: SimScenario | SimScenarioInput;
  /** Time between samples of the series and invariant checks (default 5 minutes). */
  readonly sampleMs?: number;
  /** Faults to inject, drawn from the seed (engine/faults.ts). */
  readonly faults?: FaultPlan;
  /** Count invariant violations and run on (default: the first one stops the run, InvariantViolationError). */
  readonly keepGoing?: boolean;
  /** After each sample: simulated ms done of the total. */
  readonly onProgress?: (doneMs: number, totalMs: number) => void;
  readonly onViolation?: (name: InvariantName, message: string) => void;
  /** At the end: where the time went, for benchmarks. */
  readonly onStats?: (stats: RunStats) => void;
}

export interface RunStats {
  /** Control-loop ticks (scheduled and triggered by shortfalls), their wall time and the solver's part of it. */
  readonly ticks: number;
  readonly tickWallMs: number;
  readonly solveMs: number;
  readonly runtimeWallMs: number;
  readonly meterWallMs: number;
  /** Moments the clock stopped at. */
  readonly steps: number;
  readonly wallMs: number;
}

export const DEFAULT_SAMPLE_MS = 5 * 60_000;
/** The meter checkpoints every 5 simulated minutes (the broker's default is 5 s: durability a simulation does not need). */
const METER_HEARTBEAT_MS = 5 * 60_000;
const APP = 'workload';
const FUNCTION = 'handle';

/** Simulated duration of a run, ms. */
export function windowMsOf(workload: Workload, scale: ScaleOptions, hours: number | undefined): number {
  if (hours !== undefined) {
    if (!(hours > 0 && hours <= 24 * 3_650))
      throw new ValidationError('--hours', 'must be above 0 and at most 87600');
    return Math.round(hours * HOUR_MS);
  }
  return Math.ceil(scaledDurationMs(workload, scale) / 1000) * 1000;
}

export async function runSimulation(o: RunOptions): Promise<PolicyResult> {
  const wallStart = performance.now();
  await warmSolvers();
  const { workload, policy, seed } = o;
  const scale: ScaleOptions = { scale: o.scale ?? 1, speed: o.speed ?? 1, seed };
  const windowMs = windowMsOf(workload, scale, o.hours);
  const sampleMs = o.sampleMs ?? DEFAULT_SAMPLE_MS;
  const startMs = workload.startMs;
  const endMs = startMs + windowMs;
  const offerings = simulatedOfferings(workload.gpu, policy.broker);
  if (offerings.length === 0)
    throw new ValidationError('--gpu', `the catalog has no offering of "${workload.gpu}"`);
  const fn = workload.function
    ? parseFunctionOptions({ ...workload.function, ...policy.function, gpu: workload.gpu })
    : undefined;
  const gpusPerCall = fn?.gpus[0]?.count ?? 1;

  const clock = new VirtualClock(startMs);
  const random = new Random(`simulation|${seed}`);
  const invariants = new InvariantLog(
    o.onViolation,
    o.keepGoing ? undefined : () => ({ seed, policy: policy.name, atMs: clock.now() - startMs }),
  );
  let leases: LeaseDriver | undefined;
  const metrics = new SimMetrics(clock, gpusPerCall, () => leases?.gpus() ?? { pending: 0, ready: 0 });
  const faults = o.faults ?? NO_FAULTS;
  const crashes = random.fork('faults|crashes');
  const executor = new SimExecutor({
    clock,
    coldStartMs: coldStartSampler(random.fork('cold-starts')),
    listener: metrics,
    ...(faults.crashes > 0 ? { crashAfterMs: () => crashAfterMs(faults, crashes) } : {}),
  });
  const regions = [
    ...new Map(
      offerings.map((o) => [`${o.vendor}/${o.region}`, { vendor: o.vendor, region: o.region }]),
    ).values(),
  ];
  const baseScenario = (o.scenario ?? {}) as SimScenarioInput;
  const providers = createSimClouds({
    clock,
    scenario: {
      ...baseScenario,
      seed,
      outages: [
        ...(baseScenario.outages ?? []),
        ...injectedOutages(faults, random.fork('faults|outages'), windowMs, regions),
      ],
      preemptionStorms: [
        ...(baseScenario.preemptionStorms ?? []),
        ...injectedStorms(faults, random.fork('faults|storms'), windowMs, [
          ...new Set(regions.map((r) => r.vendor)),
        ]).map(({ atMs, vendor }) => ({ atMs, vendor })),
      ],
    } as SimScenarioInput,
    offerings,
  });
  let providerEvents = 0;
  for (const provider of providers)
    provider.subscribe((event) => {
      providerEvents++;
      leases?.markDirty();
      if (event.kind !== 'state-changed' || event.to !== 'terminated') return;
      if (event.reason === 'preempted') metrics.preemptions++;
      // The containers die with their instance; their in-flight calls run again elsewhere.
      executor.instanceGone(event.instanceId, `instance ${event.instanceId} ${event.reason ?? 'ended'}`);
    });

  const database = await openDatabase({});
  // Where the wall time goes: the solver (from each tick's report), the runtime and the meter (their stopwatches).
  // The runtime and the meter work in millions of microsecond pieces: a sample of them is timed (see WallAccount).
  const runtimeWall = new WallAccount({ sampleOneIn: 16 });
  const meterWall = new WallAccount({ sampleOneIn: 16 });
  const broker = new BrokerCore({
    database,
    clock,
    providers,
    seed,
    executor,
    meterHeartbeatMs: METER_HEARTBEAT_MS,
    // Nobody asks a simulated call for its result: an hour of finished calls kept would be garbage that lives long
    // enough to be promoted and collected the dear way.
    retainCallsMs: 0,
    stopwatches: { runtime: runtimeWall, meter: meterWall },
  });

  let closed: Promise<void> | undefined;
  const closeBroker = () => {
    closed ??= broker.close();
    return closed;
  };
  let solveMs = 0;
  let ticks = 0;
  let tickMs = 0;
  let lastPlanId = '';
  // Static peak reservation: the plans hold the peak as a buffer until the fleet has it, then stop nothing.
  let peakToReach: number | undefined;
  // The loop counts as busy until this has reacted, so the clock does not move on in between.
  broker.loop.onTickDone(async (report) => {
    if (report.planId !== lastPlanId) {
      solveMs += report.solveMs;
      ticks++;
      tickMs += report.tickMs;
    }
    lastPlanId = report.planId;
    leases?.markDirty();
    if (peakToReach !== undefined && gpusHeld(broker, workload.gpu) >= peakToReach) {
      peakToReach = undefined;
      await broker.setPolicy(staticPeakLaterPlans(policy.broker), 'simulation');
    }
  });

  try {
    if (policy.staticPeak) {
      peakToReach = peakGpus(scaledRequests(workload, scale, windowMs), windowMs, {
        gpus: gpusPerCall,
        concurrency: fn?.concurrency ?? 1,
      });
      await broker.setPolicy(staticPeakFirstPlan(policy.broker, workload.gpu, peakToReach), 'simulation');
    } else await broker.setPolicy(policy.broker, 'simulation');
    await broker.start({ schedule: true });
    if (policy.staticPeak) await broker.loop.tick();

    const { token } = await broker.tokens.create('simulation', 'tenant');
    const principal = (await broker.tokens.authenticate(token)) as Principal;
    leases = new LeaseDriver({
      broker,
      clock,
      principal,
      gpu: workload.gpu,
      beforeChange: () => metrics.touch(),
      served: (ms) => metrics.served(ms),
    });
    if (fn) {
      const bundle = createHash('sha256').update(`simulation|${workload.name}`).digest('hex');
      broker.runtime.deployApp({
        tenantId: principal.tenantId,
        app: APP,
        bundleId: `${principal.tenantId}/${bundle}`,
        functions: { [FUNCTION]: fn },
      });
    }
    const leaseDriver = leases;
    let callsSubmitted = 0;
    const feed = new ArrivalFeed(
      clock,
      startMs,
      scaledRequests(workload, scale, windowMs),
      (request, now) => {
        if (request.kind === 'lease') {
          leaseDriver.request(request.gpus, request.durationMs, now);
          return;
        }
        if (!fn) throw new Error(`${workload.name}: a call without a function`);
        const args: SimCallArgs = { serviceMs: request.serviceMs, arrivalMs: now, starts: 0 };
        metrics.callArrived(args);
        broker.runtime.call(principal.tenantId, APP, FUNCTION, [args]);
        callsSubmitted++;
      },
    );
    feed.start();

    // Samples: a timer makes sure time stops at each sample moment; the sample is taken once that moment settled.
    const series = emptySeries(workload.gpu);
    const sampleTimes: number[] = [];
    for (let t = startMs; t < endMs; t += sampleMs) sampleTimes.push(t);
    sampleTimes.push(endMs);
    for (const t of sampleTimes) clock.setTimer(t, () => undefined);
    let nextSample = 0;
    let steps = 0;
    // What the last check saw (a check is due when any of it changed).
    const checked = { containerEvents: -1, providerEvents: -1, ticks: -1, leaseChanges: -1 };
    const takeSample = () => {
      metrics.touch();
      const now = clock.now();
      series.tMs.push(now - startMs);
      const cell = series.byGpu[workload.gpu] as { demandGpus: number[]; provisionedGpus: number[] };
      cell.demandGpus.push(metrics.demandGpus());
      let provisioned = 0;
      for (const i of broker.fleet.all()) if (i.gpu === workload.gpu) provisioned += i.gpusPerInstance;
      cell.provisionedGpus.push(provisioned);
      series.preemptions.push(metrics.preemptions);
      series.unmetGpus.push(metrics.unmetGpus());
      // Counting every call the runtime holds is too dear for every step: this one is checked at samples.
      if (fn) checkNoInputLost(broker, principal.tenantId, callsSubmitted, invariants);
      o.onProgress?.(now - startMs, windowMs);
    };
    const currentPolicy = () => (policy.staticPeak ? staticPeakLaterPlans(policy.broker) : policy.broker);
    await driveUntil(clock, endMs, {
      busy: () => broker.loop.busy || leaseDriver.busy,
      // A database that does not count its operations gets a turn at every moment.
      pending: () =>
        (database.operationsInFlight() ?? 1) > 0 || providerEvents > broker.providerEventsHandled,
      afterStep: () => {
        steps++;
        // The cheap invariants after every step that changed what they read (containers, the fleet, leases, a
        // tick), once the moment settled (not while a tick is still in flight, whose work is half done): a
        // violation stops the run at the simulated time it happened. Steps that changed none of it (most of the
        // millions in a long run) would only find the same answer again.
        if (!broker.loop.busy && !leaseDriver.busy) {
          const fleetMoved =
            checked.providerEvents !== providerEvents ||
            checked.ticks !== ticks ||
            checked.leaseChanges !== broker.leases.changes;
          if (fleetMoved || checked.containerEvents !== metrics.containerEvents) {
            checked.containerEvents = metrics.containerEvents;
            checked.providerEvents = providerEvents;
            checked.ticks = ticks;
            checked.leaseChanges = broker.leases.changes;
            // The fleet and leases as they were at the last check, only containers came and went: what can have
            // gone wrong is with the new containers (and the counts), which the step check looks at.
            if (fleetMoved) checkWhileRunning(broker, metrics, currentPolicy(), invariants);
            else checkContainersStep(broker, metrics, invariants);
          }
        }
        const started = leaseDriver.check();
        while (nextSample < sampleTimes.length && (sampleTimes[nextSample] as number) <= clock.now()) {
          nextSample++;
          takeSample();
        }
        return started;
      },
    });

    // The end: what still waits counts with the wait it had; then the broker stops (the meter closes what is open).
    metrics.touch();
    metrics.censor(clock.now());
    for (const arrival of leaseDriver.waitingSince()) metrics.waits.add(clock.now() - arrival);
    leaseDriver.finish();
    await closeBroker();
    await checkBilledUsage(broker, metrics, leaseDriver.heldGpuMs, startMs, endMs, invariants);
    const costs = await costReport(database.db, startMs, endMs, await broker.invoices.ratesAt(endMs));
    const spans = await database.db
      .select({
        launchedAt: instances.launchedAt,
        terminatedAt: instances.terminatedAt,
        microsPerHour: instances.microsPerHour,
      })
      .from(instances);
    series.costUsd.push(
      ...cumulativeCostUsd(
        spans,
        series.tMs.map((t) => startMs + t),
      ),
    );
    const { stats, cdf } = metrics.waits.summary();
    const wallMs = performance.now() - wallStart;
    o.onStats?.({
      ticks,
      tickWallMs: tickMs,
      solveMs,
      runtimeWallMs: runtimeWall.ms,
      meterWallMs: meterWall.ms,
      steps,
      wallMs,
    });
    const provisionedHours = costs.total.provisionedGpuSeconds / 3600;
    const usedHours = costs.total.billedGpuSeconds / 3600;
    return {
      seed,
      workload: workload.name,
      policy: policy.name,
      costUsd: microsToUsd(costs.total.costMicroUsd),
      gpuHoursProvisioned: round(provisionedHours, 4),
      gpuHoursUsed: round(usedHours, 4),
      utilization: provisionedHours > 0 ? round(usedHours / provisionedHours, 4) : 0,
      waitMs: stats,
      waitSamples: metrics.waits.count,
      ...(waitCaveat(metrics.waits.count) ? { caveat: waitCaveat(metrics.waits.count) as string } : {}),
      paretoFrontier: false,
      coldStarts: metrics.coldStarts,
      preemptions: metrics.preemptions,
      unmetGpuHours: round(metrics.unmetGpuHours, 4),
      wallMs: Math.round(wallMs),
      requests: feed.submitted,
      wallShare: {
        solver: round(solveMs / wallMs, 4),
        runtime: round(runtimeWall.ms / wallMs, 4),
        meter: round(meterWall.ms / wallMs, 4),
      },
      series,
      waitCdf: cdf,
      invariants: invariants.results(),
    };
  } finally {
    await closeBroker().catch(() => undefined);
    for (const provider of providers) await provider.close();
    await database.close();
  }
}

function emptySeries(gpu: string): TimeSeries & {
  tMs: number[];
  costUsd: number[];
  preemptions: number[];
  unmetGpus: number[];
} {
  return {
    tMs: [],
    byGpu: { [gpu]: { demandGpus: [], provisionedGpus: [] } },
    costUsd: [],
    preemptions: [],
    unmetGpus: [],
  };
}

/**
 * What the simulated clouds sell: the catalog's offerings of the workload's GPU type, in the region groups where
 * the broker places demand (its default group, where requests that name no region go, and the warm-buffer groups).
 * No other offering can cover that demand, so leaving them out changes no plan and makes every tick cheaper; with
 * a spread rule (`maxRegionShare` or `maxVendorShare` below 1) capacity elsewhere would count, and all groups stay.
 */
export function simulatedOfferings(gpu: string, policy: BrokerPolicy): Offering[] {
  const groups = new Set([policy.defaultRegionGroup, ...policy.warmRegionGroups]);
  const spread = policy.maxRegionShare < 1 || policy.maxVendorShare < 1;
  return loadCatalog(undefined, { regionGroups: policy.regionGroups }).filter(
    (o) => o.gpu === gpu && (spread || groups.has(o.regionGroup)),
  );
}

/** GPUs of a type the fleet holds (booting or running, not being stopped). */
function gpusHeld(broker: BrokerCore, gpu: string): number {
  let gpus = 0;
  for (const i of broker.fleet.all())
    if (i.gpu === gpu && i.state !== 'terminating') gpus += i.gpusPerInstance;
  return gpus;
}

/**
 * No input lost: every call the workload submitted is known to the runtime, and each is finished, queued or
 * running (a crash, a reclaim or an outage may make it run again, never vanish).
 */
function checkNoInputLost(
  broker: BrokerCore,
  tenantId: string,
  submitted: number,
  invariants: InvariantLog,
): void {
  const { done, total } = broker.runtime.callCounts(tenantId, APP);
  const inFlight = broker.runtime
    .callsInFlight()
    .filter((c) => c.tenantId === tenantId)
    .reduce((sum, c) => sum + c.count, 0);
  invariants.record(
    'noInputLost',
    total !== submitted
      ? `${submitted} calls submitted, the runtime knows ${total}`
      : done + inFlight !== total
        ? `${total - done - inFlight} of ${total} calls are neither finished, queued nor running`
        : undefined,
  );
}

/**
 * The step invariants where only containers came and went since the last check (the fleet, its leases and the
 * spend as they were): what can have gone wrong is with the new containers and the counts. Exact for these steps:
 * anything else a full check (`checkWhileRunning`) would find was there at the last one.
 */
function checkContainersStep(broker: BrokerCore, metrics: SimMetrics, invariants: InvariantLog): void {
  let doubleBooked = metrics.doubleBooked;
  const started: string[] = [];
  for (const containerId of metrics.startedSinceCheck) {
    const c = metrics.live.get(containerId);
    if (!c) continue;
    started.push(containerId);
    doubleBooked ??= gpusProblem(broker, containerId, c);
  }
  metrics.startedSinceCheck.length = 0;
  invariants.record('gpuNotDoubleBooked', doubleBooked);
  invariants.record('meterTracksContainers', meterProblem(broker, metrics, started));
}

/**
 * What is wrong with a live container's GPUs against the fleet: its instance is gone, it holds a GPU the instance
 * has not, or a lease holds one of them. (Two containers on one GPU are found as the second starts, `SimMetrics`.)
 */
function gpusProblem(broker: BrokerCore, containerId: string, c: ContainerRecord): string | undefined {
  const instance = broker.fleet.get(c.instanceId);
  if (!instance) return `container ${containerId} runs on ${c.instanceId}, which the fleet no longer has`;
  for (const g of c.gpuIndices) {
    if (g >= instance.gpusPerInstance)
      return `container ${containerId} holds GPU ${g} of ${c.instanceId}, which has ${instance.gpusPerInstance}`;
    const owner = instance.allocated.get(g);
    if (owner?.startsWith('lease_'))
      return `GPU ${g} of ${c.instanceId} is held by ${containerId} and lease ${owner}`;
  }
  return undefined;
}

/** The meter's open container intervals are as many as the live containers, and these ones have theirs. */
function meterProblem(broker: BrokerCore, metrics: SimMetrics, ids: Iterable<string>): string | undefined {
  const open = broker.meter.openCount('container');
  if (open !== metrics.live.size)
    return `${open} container intervals open, ${metrics.live.size} containers alive`;
  for (const id of ids)
    if (broker.meter.openFacts(id)?.kind !== 'container') return `container ${id} has no open interval`;
  return undefined;
}

function checkWhileRunning(
  broker: BrokerCore,
  metrics: SimMetrics,
  policy: BrokerPolicy,
  invariants: InvariantLog,
): void {
  metrics.startedSinceCheck.length = 0;
  // No GPU held twice: the executor's containers against each other (found as they start) and against the fleet.
  let doubleBooked = metrics.doubleBooked;
  for (const [containerId, c] of metrics.live) doubleBooked ??= gpusProblem(broker, containerId, c);
  invariants.record('gpuNotDoubleBooked', doubleBooked);

  // Spend: what the plan counts as held, at list price (reserved capacity is paid already).
  if (policy.budgetUsdPerHour !== null) {
    let micros = 0;
    for (const i of broker.fleet.capacity()) if (i.capacityType !== 'reserved') micros += i.microsPerHour;
    const budgetMicros = usdToMicros(policy.budgetUsdPerHour);
    invariants.record(
      'spendWithinBudget',
      micros > budgetMicros
        ? `the fleet costs $${microsToUsd(micros)}/h, above the budget $${microsToUsd(budgetMicros)}/h`
        : undefined,
    );
  }

  // The meter's open container intervals are the live containers, no more, no less.
  invariants.record('meterTracksContainers', meterProblem(broker, metrics, metrics.live.keys()));
}

/** At the end: the usage table against the executor's containers and the simulation's leases. */
async function checkBilledUsage(
  broker: BrokerCore,
  metrics: SimMetrics,
  leaseGpuMs: number,
  startMs: number,
  endMs: number,
  invariants: InvariantLog,
): Promise<void> {
  const rows = await broker.usage.spans();
  const containers = new Map(rows.filter((r) => r.kind === 'container').map((r) => [r.id, r]));
  let expectedGpuSeconds = 0;
  for (const [id, c] of metrics.containers) {
    const row = containers.get(id);
    containers.delete(id);
    const gpus = c.gpuIndices.length;
    if (c.endMs !== undefined && c.endMs > c.startMs)
      expectedGpuSeconds += Math.ceil((c.endMs - c.startMs) / 1000) * gpus;
    invariants.record(
      'billedUsageEqualsIntervals',
      !row
        ? `container ${id} has no usage interval`
        : row.startMs !== c.startMs || row.endMs !== c.endMs || row.gpus !== gpus
          ? `container ${id}: billed [${row.startMs}, ${row.endMs}) × ${row.gpus}, ran [${c.startMs}, ${c.endMs}) × ${gpus}`
          : undefined,
    );
  }
  for (const id of containers.keys())
    invariants.record('billedUsageEqualsIntervals', `usage interval ${id} belongs to no container`);
  const groups = await usageGroups(broker.database.db, startMs, endMs + 1);
  const billed = groups.filter((g) => g.kind === 'container').reduce((sum, g) => sum + g.gpuSeconds, 0);
  invariants.record(
    'billedUsageEqualsIntervals',
    billed === expectedGpuSeconds
      ? undefined
      : `billed ${billed} container GPU-seconds, containers ran ${expectedGpuSeconds}`,
  );
  const leaseRows = rows.filter((r) => r.kind === 'lease');
  const billedLeaseGpuMs = leaseRows.reduce((sum, r) => sum + (r.observedEndMs - r.startMs) * r.gpus, 0);
  invariants.record(
    'billedUsageEqualsIntervals',
    billedLeaseGpuMs === leaseGpuMs
      ? undefined
      : `billed ${billedLeaseGpuMs} lease GPU-ms, leases were held ${leaseGpuMs}`,
  );
}

let warmed: Promise<void> | undefined;

/**
 * Loads the solvers' WebAssembly before the clock starts: loading is real asynchronous work, and a tick must
 * never wait on anything but promises that the simulation's moments settle.
 */
export function warmSolvers(): Promise<void> {
  warmed ??= (async () => {
    const offerings: Offering[] = loadCatalog()
      .filter((offering) => offering.gpu === 'L4')
      .slice(0, 4);
    const regionGroup = offerings[0]?.regionGroup ?? 'us';
    for (const backend of ['highs', 'glpk'] as const)
      await planCapacity({
        offerings,
        demand: [{ gpu: 'L4', regionGroup, gangSize: 1, gpus: [1] }],
        policy: planningPolicy({ solver: { backend } }),
      });
  })();
  return warmed;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
