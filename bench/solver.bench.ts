/**
 * `npm run bench`: solve-time and quality figures for the capacity model on the real catalog.
 *  (a) 8 GPU types × 3 region groups, 12 hourly periods, demand from the Alibaba GPU trace, 10 seeds;
 *  (b) the same over 24 periods with gang sizes {1, 8} and a GPU quota on every vendor × region.
 * Writes bench/results/solver-<timestamp>.json and prints a table. Needs ../shared/data beside the repo.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import Table from 'cli-table3';
import { Random } from '../lib/random.ts';
import { loadCatalog } from '../providers/catalog/load-catalog.ts';
import { planCapacity } from '../solver/plan.ts';
import { planningPolicy } from '../solver/policy.ts';
import type { DemandClass, PlanInput, Quota } from '../solver/types.ts';
import { loadPodTrace } from './trace-demand.ts';

const SEEDS = Number(process.env.BENCH_SEEDS ?? 10);
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

interface Row {
  scenario: string;
  seed: number;
  solveMs: number;
  status: string;
  objective: number;
  bound: number;
  gap: number;
  usdPerHour: number;
  greedyObjective: number;
  greedyUsdPerHour: number;
  unmetGpus: number;
  integers: number;
  offerings: number;
}

async function run(scenario: string, periods: number, gangs: boolean, withQuotas: boolean): Promise<Row[]> {
  const rows: Row[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    const base: Omit<PlanInput, 'policy'> = {
      offerings: catalog,
      demand: demandFor(seed, periods, gangs),
      ...(withQuotas ? { quotas: quotasFor(seed) } : {}),
    };
    const policy = { spotMaxShare: 0.5, buffer: { default: { gpus: 0, fraction: 0.1 } } };
    const mip = await planCapacity({
      ...base,
      policy: planningPolicy({
        ...policy,
        solver: { backend: 'highs', relativeGap: 0.01, timeLimitMs: 10_000 },
      }),
    });
    const greedy = await planCapacity({
      ...base,
      policy: planningPolicy({ ...policy, solver: { backend: 'greedy' } }),
    });
    rows.push({
      scenario,
      seed,
      solveMs: mip.solveMs,
      status: mip.status,
      objective: mip.objective,
      bound: mip.bound,
      gap: mip.gap,
      usdPerHour: mip.cost.usdPerHour,
      greedyObjective: greedy.objective,
      greedyUsdPerHour: greedy.cost.usdPerHour,
      unmetGpus: mip.unmetGpus,
      integers: mip.model.integers,
      offerings: mip.model.offeringsAfterReduction,
    });
    process.stderr.write(
      `${scenario} seed ${seed}: ${mip.solveMs} ms, ${mip.status}, gap ${(mip.gap * 100).toFixed(2)}%\n`,
    );
  }
  return rows;
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
};
const median = (values: number[]) => quantile(values, 0.5);

const results = [
  ...(await run('a: 12 periods', 12, false, false)),
  ...(await run('b: 24 periods, gangs {1,8}, quotas', 24, true, true)),
];
const summary = [...new Set(results.map((r) => r.scenario))].map((scenario) => {
  const rs = results.filter((r) => r.scenario === scenario);
  return {
    scenario,
    seeds: rs.length,
    solveMsP50: median(rs.map((r) => r.solveMs)),
    solveMsP95: quantile(
      rs.map((r) => r.solveMs),
      0.95,
    ),
    optimal: rs.filter((r) => r.status === 'optimal').length,
    gapMax: Math.max(...rs.map((r) => r.gap)),
    objectiveMedian: median(rs.map((r) => r.objective)),
    boundMedian: median(rs.map((r) => r.bound)),
    greedyObjectiveMedian: median(rs.map((r) => r.greedyObjective)),
    savingVsGreedyMedian: median(rs.map((r) => (r.greedyObjective - r.objective) / r.greedyObjective)),
    usdPerHourMedian: median(rs.map((r) => r.usdPerHour)),
    greedyUsdPerHourMedian: median(rs.map((r) => r.greedyUsdPerHour)),
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
  `${JSON.stringify({ node: process.version, gpus, groups: GROUPS, catalogOfferings: catalog.length, summary, results }, null, 2)}\n`,
);

const table = new Table({
  head: [
    'scenario',
    'p50 ms',
    'p95 ms',
    'optimal',
    'max gap',
    'objective',
    'bound',
    'greedy',
    'saving',
    'USD/h',
    'greedy USD/h',
    'integers',
  ],
  style: { head: [], border: [] },
});
const usd = (v: number) => `$${v.toFixed(0)}`;
for (const s of summary) {
  table.push([
    s.scenario,
    s.solveMsP50,
    s.solveMsP95,
    `${s.optimal}/${s.seeds}`,
    `${(s.gapMax * 100).toFixed(2)}%`,
    usd(s.objectiveMedian),
    usd(s.boundMedian),
    usd(s.greedyObjectiveMedian),
    `${(s.savingVsGreedyMedian * 100).toFixed(1)}%`,
    usd(s.usdPerHourMedian),
    usd(s.greedyUsdPerHourMedian),
    s.integersMedian,
  ]);
}
console.log(table.toString());
console.log(`GPU types: ${gpus.join(', ')}; groups: ${GROUPS.join(', ')}; written ${file.pathname}`);
