/**
 * `npm run bench:solver`: solve-time and quality figures for the capacity model on the real catalog.
 *  (a) 8 GPU types × 3 region groups, 12 hourly periods, demand from the Alibaba GPU trace;
 *  (b) the same over 24 periods with gang sizes {1, 8} and a GPU quota on every vendor × region;
 *  each on the fixed seeds 1..BENCH_SEEDS (default 10) and on BENCH_FRESH (default 5) seeds drawn afresh at every
 *  run (printed; BENCH_FRESH_SEEDS=s1,s2,… replays them);
 *  warm: the broker loop's next ticks on the fixed seeds. After the cold plan, the fleet becomes what the plan holds
 *  (one settling tick, not counted), then BENCH_TICKS (default 3) ticks each make one small random change (one
 *  demand class ± 1–2 gangs over 1–3 periods, or one held pool ± 1 instance) and re-plan with the previous plan
 *  passed back (`previous`). Each tick is also planned cold, untimed, to compare the objectives.
 * Block MIPs run on BENCH_THREADS worker threads (default: the machine's cores).
 * One plan is solved first and not counted: it loads the WebAssembly solvers (a long-lived broker does this once).
 * Writes bench/results/solver-<timestamp>.json and prints a table. Needs ../shared/data beside the repo.
 */
import { randomInt } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import Table from 'cli-table3';
import { Random } from '../lib/random.ts';
import { loadCatalog } from '../providers/catalog/load-catalog.ts';
import { planCapacity } from '../solver/plan.ts';
import { planningPolicy } from '../solver/policy.ts';
import type { DemandClass, FleetPool, Plan, PlanInput, Quota } from '../solver/types.ts';
import { loadPodTrace } from './trace-demand.ts';

const SEEDS = Number(process.env.BENCH_SEEDS ?? 10);
const FRESH = process.env.BENCH_FRESH_SEEDS
  ? process.env.BENCH_FRESH_SEEDS.split(',').map(Number)
  : Array.from({ length: Number(process.env.BENCH_FRESH ?? 5) }, () => randomInt(11, 2 ** 31 - 1));
const TICKS = Number(process.env.BENCH_TICKS ?? 3);
/** Worker threads for the block MIPs, as a broker on the real clock would give: the machine's cores. */
const THREADS = Number(process.env.BENCH_THREADS ?? availableParallelism());
const GROUPS = ['us', 'eu', 'asia'];
const PREFERRED = ['H100', 'H200', 'A100-80GB', 'A100-40GB', 'L40S', 'L4', 'A10G', 'T4', 'V100'];
const TOTAL_GPUS = 1_200; // scale of the whole demand, spread over the 24 cells

const catalog = loadCatalog();
const gpus = PREFERRED.filter((g) =>
  GROUPS.every((grp) => catalog.some((o) => o.gpu === g && o.regionGroup === grp)),
).slice(0, 8);
const trace = loadPodTrace(
  new URL('../../shared/data/traces/alibaba-gpu-2023-pods.csv', import.meta.url).pathname,
);
const peakSingle = Math.max(...trace.single);

function demandFor(seed: number, periods: number, gangs: boolean): DemandClass[] {
  const random = new Random(seed);
  const offset = random.int(0, trace.single.length - periods - 1);
  const classes: DemandClass[] = [];
  const weights = gpus.flatMap(() => GROUPS.map(() => random.uniform(0.2, 1.8)));
  const norm = weights.reduce((a, b) => a + b, 0);
  let k = 0;
  for (const gpu of gpus) {
    for (const regionGroup of GROUPS) {
      const scale = (TOTAL_GPUS * (weights[k++] as number)) / norm / peakSingle;
      classes.push({
        gpu,
        regionGroup,
        gangSize: 1,
        gpus: Array.from({ length: periods }, (_, t) =>
          Math.round((trace.single[offset + t] as number) * scale),
        ),
      });
      const eight = catalog.some(
        (o) => o.gpu === gpu && o.regionGroup === regionGroup && o.gpusPerInstance >= 8,
      );
      if (gangs && eight) {
        classes.push({
          gpu,
          regionGroup,
          gangSize: 8,
          gpus: Array.from(
            { length: periods },
            (_, t) => 8 * Math.round(((trace.gang8[offset + t] as number) * scale * 3) / 8),
          ),
        });
      }
    }
  }
  return classes;
}

function quotasFor(seed: number): Quota[] {
  const random = new Random(seed * 7919);
  const regions = [...new Set(catalog.map((o) => `${o.vendor}/${o.region}`))].sort();
  return regions.map((vr) => {
    const [vendor = '', region = ''] = vr.split('/');
    return { vendor, region, maxGpus: 8 * random.int(4, 24) };
  });
}

const policy = { spotMaxShare: 0.5, buffer: { default: { gpus: 0, fraction: 0.1 } } };
const mipPolicy = planningPolicy({
  ...policy,
  solver: { backend: 'highs', relativeGap: 0.01, timeLimitMs: 10_000 },
});
const greedyPolicy = planningPolicy({ ...policy, solver: { backend: 'greedy' } });

interface Case {
  name: string;
  periods: number;
  gangs: boolean;
  quotas: boolean;
}
const A: Case = { name: 'a', periods: 12, gangs: false, quotas: false };
const B: Case = { name: 'b', periods: 24, gangs: true, quotas: true };

function inputFor(c: Case, seed: number): Omit<PlanInput, 'policy'> {
  return {
    offerings: catalog,
    demand: demandFor(seed, c.periods, c.gangs),
    ...(c.quotas ? { quotas: quotasFor(seed) } : {}),
  };
}

interface Row {
  scenario: string;
  seed: number;
  tick?: number;
  change?: string;
  solveMs: number;
  status: string;
  objective: number;
  bound: number;
  gap: number;
  usdPerHour: number;
  /** Cold scenarios: the greedy plan; warm ticks: the same tick planned cold. */
  reference: number;
  unmetGpus: number;
  integers: number;
  offerings: number;
}

function row(scenario: string, seed: number, mip: Plan, reference: number): Row {
  return {
    scenario,
    seed,
    solveMs: mip.solveMs,
    status: mip.status,
    objective: mip.objective,
    bound: mip.bound,
    gap: mip.gap,
    usdPerHour: mip.cost.usdPerHour,
    reference,
    unmetGpus: mip.unmetGpus,
    integers: mip.model.integers,
    offerings: mip.model.offeringsAfterReduction,
  };
}

function log(r: Row): void {
  process.stderr.write(
    `${r.scenario} seed ${r.seed}${r.tick === undefined ? '' : ` tick ${r.tick} (${r.change})`}: ${r.solveMs} ms, ${r.status}, gap ${(r.gap * 100).toFixed(2)}%\n`,
  );
}

async function cold(c: Case, scenario: string, seeds: number[]): Promise<Row[]> {
  const rows: Row[] = [];
  for (const seed of seeds) {
    const base = inputFor(c, seed);
    const mip = await planCapacity({ ...base, policy: mipPolicy, threads: THREADS });
    const greedy = await planCapacity({ ...base, policy: greedyPolicy });
    const r = row(scenario, seed, mip, greedy.objective);
    log(r);
    rows.push(r);
  }
  return rows;
}

async function warm(c: Case, scenario: string, seeds: number[]): Promise<Row[]> {
  const rows: Row[] = [];
  for (const seed of seeds) {
    const random = new Random(seed * 104_729);
    const base = inputFor(c, seed);
    let demand = base.demand;
    let plan = await planCapacity({ ...base, policy: mipPolicy, threads: THREADS });
    const heldBy = (p: Plan): FleetPool[] =>
      p.pools.map((q) => ({ offeringId: q.offeringId, count: q.count }));
    let fleet = heldBy(plan);
    plan = await planCapacity({ ...base, policy: mipPolicy, threads: THREADS, fleet, previous: plan });
    for (let tick = 1; tick <= TICKS; tick++) {
      fleet = heldBy(plan);
      let change: string;
      if (random.next() < 0.5 || fleet.length === 0) {
        const d = random.int(0, demand.length - 1);
        const cls = demand[d] as DemandClass;
        const from = random.int(0, c.periods - 1);
        const span = random.int(1, 3);
        const step = cls.gangSize * (random.next() < 0.5 ? -1 : 1) * random.int(1, 2);
        demand = demand.map((x, i) =>
          i !== d
            ? x
            : {
                ...x,
                gpus: x.gpus.map((g, t) => (t >= from && t < from + span ? Math.max(0, g + step) : g)),
              },
        );
        change = `demand ${cls.gpu}/${cls.regionGroup}/${cls.gangSize} ${step > 0 ? '+' : ''}${step} in ${span} period(s)`;
      } else {
        const k = random.int(0, fleet.length - 1);
        const step = random.next() < 0.5 ? -1 : 1;
        fleet = fleet.map((f, i) => (i === k ? { ...f, count: Math.max(0, f.count + step) } : f));
        change = `fleet ${fleet[k]?.offeringId} ${step > 0 ? '+1' : '-1'}`;
      }
      const input = { ...base, demand, fleet, policy: mipPolicy, threads: THREADS };
      const next = await planCapacity({ ...input, previous: plan });
      const coldPlan = await planCapacity(input);
      const r = { ...row(scenario, seed, next, coldPlan.objective), tick, change };
      log(r);
      rows.push(r);
      plan = next;
    }
  }
  return rows;
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
};
const median = (values: number[]) => quantile(values, 0.5);

// Load and compile the solvers (HiGHS and GLPK, WebAssembly) once, as a long-lived planner has.
await planCapacity({ ...inputFor(A, 1_000_003), policy: mipPolicy, threads: THREADS });
await planCapacity({ ...inputFor(B, 1_000_003), policy: mipPolicy, threads: THREADS });

const fixed = Array.from({ length: SEEDS }, (_, k) => k + 1);
process.stderr.write(`fresh seeds: ${FRESH.join(',')}\n`);
const results = [
  ...(await cold(A, 'a: 12 periods, fixed seeds', fixed)),
  ...(await cold(A, 'a: 12 periods, fresh seeds', FRESH)),
  ...(await cold(B, 'b: 24 periods, gangs {1,8}, quotas, fixed seeds', fixed)),
  ...(await cold(B, 'b: 24 periods, gangs {1,8}, quotas, fresh seeds', FRESH)),
  ...(await warm(A, 'a warm re-plan (next tick, previous plan passed)', fixed)),
  ...(await warm(B, 'b warm re-plan (next tick, previous plan passed)', fixed)),
];
const summary = [...new Set(results.map((r) => r.scenario))].map((scenario) => {
  const rs = results.filter((r) => r.scenario === scenario);
  return {
    scenario,
    plans: rs.length,
    seeds: [...new Set(rs.map((r) => r.seed))],
    solveMsP50: median(rs.map((r) => r.solveMs)),
    solveMsP95: quantile(
      rs.map((r) => r.solveMs),
      0.95,
    ),
    optimal: rs.filter((r) => r.status === 'optimal').length,
    fallback: rs.filter((r) => r.status === 'fallback').length,
    gapMax: Math.max(...rs.map((r) => r.gap)),
    objectiveMedian: median(rs.map((r) => r.objective)),
    boundMedian: median(rs.map((r) => r.bound)),
    referenceMedian: median(rs.map((r) => r.reference)),
    /** Cold: saving against the greedy plan; warm: excess over the same tick planned cold (≤ 0: as good). */
    againstReferenceMedian: median(rs.map((r) => (r.reference - r.objective) / r.reference)),
    againstReferenceWorst: Math.min(...rs.map((r) => (r.reference - r.objective) / r.reference)),
    usdPerHourMedian: median(rs.map((r) => r.usdPerHour)),
    integersMedian: median(rs.map((r) => r.integers)),
    offeringsMedian: median(rs.map((r) => r.offerings)),
  };
});

mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(
  `./results/solver-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
  import.meta.url,
);
writeFileSync(
  file,
  `${JSON.stringify({ node: process.version, threads: THREADS, gpus, groups: GROUPS, catalogOfferings: catalog.length, freshSeeds: FRESH, summary, results }, null, 2)}\n`,
);

const table = new Table({
  head: [
    'scenario',
    'plans',
    'p50 ms',
    'p95 ms',
    'optimal',
    'max gap',
    'objective',
    'bound',
    'greedy | cold',
    'saving | vs cold',
    'USD/h',
    'integers',
  ],
  style: { head: [], border: [] },
});
const usd = (v: number) => `$${v.toFixed(0)}`;
for (const s of summary) {
  table.push([
    s.scenario,
    s.plans,
    s.solveMsP50,
    s.solveMsP95,
    `${s.optimal}/${s.plans}${s.fallback ? ` (${s.fallback} fallback)` : ''}`,
    `${(s.gapMax * 100).toFixed(2)}%`,
    usd(s.objectiveMedian),
    usd(s.boundMedian),
    usd(s.referenceMedian),
    `${(s.againstReferenceMedian * 100).toFixed(1)}%`,
    usd(s.usdPerHourMedian),
    s.integersMedian,
  ]);
}
console.log(table.toString());
console.log(
  `GPU types: ${gpus.join(', ')}; groups: ${GROUPS.join(', ')}; fresh seeds: ${FRESH.join(',')}; written ${file.pathname}`,
);
