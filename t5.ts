import { stopwatch } from './lib/clock.ts';
import { loadCatalog } from './providers/catalog/load-catalog.ts';
import { greedyCounts } from './solver/backends/greedy.ts';
import { highsBackend } from './solver/backends/highs.ts';
import { objectiveAt } from './solver/linear-model.ts';
import { planningModel } from './solver/plan.ts';
import { planningPolicy } from './solver/policy.ts';
import { completeSolution } from './solver/solution.ts';

const catalog = loadCatalog();
const gpus = ['H100', 'H200', 'A100-80GB', 'A100-40GB', 'L40S', 'L4', 'A10G', 'T4'];
const demand = gpus.flatMap((gpu, i) =>
  ['us', 'eu', 'asia'].map((g, j) => ({
    gpu,
    regionGroup: g,
    gangSize: 1,
    gpus: Array.from({ length: 12 }, (_, t) => 20 + ((i * 7 + j * 3 + t * 5) % 40)),
  })),
);
const input = {
  offerings: catalog,
  demand,
  policy: planningPolicy({ spotMaxShare: 0.5, buffer: { default: { gpus: 0, fraction: 0.1 } } }),
};
let sw = stopwatch();
const pm = planningModel(input);
console.log('build', sw(), pm.lp.colNames.length, pm.lp.rowNames.length);
sw = stopwatch();
const g = greedyCounts(pm.input);
console.log('greedy', sw());
const gv = completeSolution(pm, g);
console.log('greedy obj', objectiveAt(pm.lp, gv));
sw = stopwatch();
const r = await highsBackend.solveRelaxation(pm.lp);
console.log('relax', sw(), r?.objective);
for (const start of [true, false]) {
  sw = stopwatch();
  const m = await highsBackend.solveMip(pm.lp, {
    timeLimitMs: 10000,
    relativeGap: 0.01,
    ...(start ? { start: gv } : {}),
  });
  console.log('mip', start, sw(), m.status, m.bound, m.values && objectiveAt(pm.lp, m.values));
}

import { buildModel } from './solver/model.ts';

let tot = 0;
for (const gpu of gpus) {
  const idx = pm.input.offerings.flatMap((o, i) => (o.gpu === gpu ? [i] : []));
  const sub = {
    ...pm.input,
    offerings: idx.map((i) => pm.input.offerings[i]!),
    demand: pm.input.demand.filter((d) => d.gpu === gpu),
    current: idx.map((i) => pm.input.current[i]!),
    protectedCounts: idx.map((i) => pm.input.protectedCounts[i]!),
    maxCount: idx.map((i) => pm.input.maxCount[i]!),
    churnExempt: idx.map((i) => pm.input.churnExempt[i]!),
  };
  const spm = buildModel(sub);
  const gs = completeSolution(spm, greedyCounts(sub));
  sw = stopwatch();
  const m = await highsBackend.solveMip(spm.lp, { timeLimitMs: 10000, relativeGap: 0.01 });
  const ms = sw();
  tot += ms;
  sw = stopwatch();
  const m2 = await highsBackend.solveMip(spm.lp, { timeLimitMs: 10000, relativeGap: 0.01, start: gs });
  console.log(
    gpu,
    idx.length,
    ms,
    m.status,
    m.bound,
    m.values && objectiveAt(spm.lp, m.values),
    'withstart',
    sw(),
    m2.values && objectiveAt(spm.lp, m2.values),
    'greedy',
    objectiveAt(spm.lp, gs),
  );
}
console.log('total', tot);
for (const o of pm.input.offerings.filter((o) => o.gpu === 'A100-40GB'))
  console.log(
    o.id,
    o.regionGroup,
    o.gpusPerInstance,
    o.microsPerHour / 1e6,
    (o.microsPerHour / 1e6 / o.gpusPerInstance).toFixed(3),
  );
