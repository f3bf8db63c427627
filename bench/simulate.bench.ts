/**
 * `npm run bench:simulate`: the whole Alibaba serverless Stable Diffusion trace (23 days, 26,823 requests) replayed
 * ×100 (≈ 2.7 M calls) through the real broker loop (5-minute re-plans, plus the ticks that shortfalls trigger),
 * runtime and meter on a virtual clock. Reports the wall time (target ≤ 120 s on 2 cores), the speed-up over real
 * time, and the share of wall time spent in the solver, the runtime and the meter.
 *
 * Smaller runs: BENCH_SIM_SCALE (default 100), BENCH_SIM_HOURS (default: the whole trace), BENCH_SIM_POLICY
 * (default buffer-10), BENCH_SIM_SEED (default 1); BENCH_SIM_SCENARIO names a simulated-clouds scenario file;
 * BENCH_SIM_WORKLOAD another workload (a name or a CSV file, as `simulate --workload` takes).
 * Writes bench/results/simulate-<timestamp>.json and prints a table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import Table from 'cli-table3';
import { loadSimScenario } from '../providers/sim/scenario.ts';
import type { RunStats } from '../simulations/engine/run-simulation.ts';
import { simulate } from '../simulations/simulate.ts';

const SCALE = Number(process.env.BENCH_SIM_SCALE ?? 100);
const HOURS = process.env.BENCH_SIM_HOURS === undefined ? undefined : Number(process.env.BENCH_SIM_HOURS);
const POLICY = process.env.BENCH_SIM_POLICY ?? 'buffer-10';
const SEED = Number(process.env.BENCH_SIM_SEED ?? 1);
const SCENARIO = process.env.BENCH_SIM_SCENARIO;
const WORKLOAD = process.env.BENCH_SIM_WORKLOAD ?? 'alibaba-sd';

let stats: RunStats | undefined;
let reported = -1;
const results = await simulate({
  workload: WORKLOAD,
  scale: SCALE,
  seed: SEED,
  policies: [POLICY],
  ...(HOURS === undefined ? {} : { hours: HOURS }),
  ...(SCENARIO === undefined ? {} : { scenario: await loadSimScenario(SCENARIO) }),
  onProgress: ({ doneMs, totalMs }) => {
    const percent = Math.floor((doneMs / totalMs) * 10) * 10;
    if (percent > reported) {
      reported = percent;
      process.stderr.write(`simulated ${percent}% (${(doneMs / 86_400_000).toFixed(1)} days)\n`);
    }
  },
  onViolation: (policy, name, message) => process.stderr.write(`${policy}: ${name} violated: ${message}\n`),
  onStats: (_policy, s) => {
    stats = s;
  },
});
const r = results.results[0];
if (!r || !stats) throw new Error('the simulation produced no result');
const simulatedMs = results.hours * 3_600_000;
const summary = {
  node: process.version,
  workload: r.workload,
  scale: SCALE,
  policy: r.policy,
  seed: SEED,
  scenario: SCENARIO ?? null,
  simulatedHours: results.hours,
  requests: r.requests,
  wallMs: r.wallMs,
  speedUp: Math.round(simulatedMs / r.wallMs),
  wallShare: r.wallShare,
  ticks: stats.ticks,
  scheduledTicks: Math.floor(simulatedMs / 300_000),
  tickWallMs: Math.round(stats.tickWallMs),
  solveMs: Math.round(stats.solveMs),
  runtimeWallMs: Math.round(stats.runtimeWallMs),
  meterWallMs: Math.round(stats.meterWallMs),
  steps: stats.steps,
  microsPerRequest: Math.round((r.wallMs * 1000) / Math.max(1, r.requests)),
  costUsd: r.costUsd,
  utilization: r.utilization,
  waitMs: r.waitMs,
  coldStarts: r.coldStarts,
  preemptions: r.preemptions,
  invariants: r.invariants,
};
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(
  `./results/simulate-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
  import.meta.url,
);
writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);

const pct = (share: number) => `${(share * 100).toFixed(1)} %`;
const table = new Table({ head: ['measure', 'value'], style: { head: [], border: [] } });
table.push(
  [
    'workload',
    `${r.workload} ×${SCALE}, ${results.hours.toFixed(1)} h simulated, policy ${r.policy}${SCENARIO ? `, scenario ${SCENARIO}` : ''}`,
  ],
  ['requests', r.requests.toLocaleString('en-US')],
  ['wall time', `${(r.wallMs / 1000).toFixed(1)} s (target ≤ 120 s on 2 cores)`],
  ['speed-up over real time', `${summary.speedUp.toLocaleString('en-US')}×`],
  [
    'wall share: solver / runtime / meter',
    `${pct(r.wallShare.solver)} / ${pct(r.wallShare.runtime)} / ${pct(r.wallShare.meter)}`,
  ],
  ['control-loop ticks (5-min schedule / in all)', `${summary.scheduledTicks} / ${stats.ticks}`],
  [
    'tick wall time (solver inside it)',
    `${(stats.tickWallMs / 1000).toFixed(1)} s (${(stats.solveMs / 1000).toFixed(1)} s)`,
  ],
  ['clock stops (moments simulated)', stats.steps.toLocaleString('en-US')],
  ['wall µs per request', summary.microsPerRequest],
  ['cost, utilisation', `$${r.costUsd.toFixed(2)}, ${pct(r.utilization)}`],
  ['wait p50 / p95 / p99', `${r.waitMs.p50} / ${r.waitMs.p95} / ${r.waitMs.p99} ms`],
  ['invariant violations', Object.values(r.invariants).reduce((n, c) => n + c.violations, 0)],
);
console.log(table.toString());
console.log(`written ${file.pathname}`);
