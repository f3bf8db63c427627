/**
 * `npm run bench:placement`: container placement decisions per second on a 1,000-instance fleet of mixed GPU
 * types (instances drawn from the real catalog: 8 GPU types, 1 to 16 GPUs per instance, many regions), under
 * place-then-release churn held near 85 % of the GPUs busy. Wants are 1, 2, 4 or 8 GPUs of one type, a third of
 * them preference lists of two types, a fifth of them restricted to one region. Target: ≥ 20,000 decisions/s.
 *
 * Measures per seed:
 * - decide (SlotIndex): `SlotIndex.place` alone, the index kept current as containers come and go (what the
 *   runtime pays per container within a reconcile);
 * - churn step: the whole step, timed: release an earlier container (`GpuCapacity.free` + index update) when the
 *   fleet is busy enough, decide, `allocate`, index update;
 * - decide (placeContainer scan): the reference scan over the same state as a slot array;
 * - snapshot + index build: what one reconcile pays before placing (a Fleet-style `freeGpus()` that rebuilds
 *   every slot, then `new SlotIndex`).
 * Writes bench/results/placement-<timestamp>.json and prints a table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import Table from 'cli-table3';
import { Random } from '../lib/random.ts';
import { loadCatalog } from '../providers/catalog/load-catalog.ts';
import type { FreeGpuSlot } from '../runtime/capacity.ts';
import type { GpuWant } from '../runtime/function-spec.ts';
import { MemoryCapacity, type MemoryInstance } from '../runtime/memory-capacity.ts';
import { type PlacementWants, placeContainer, SlotIndex } from '../runtime/placement.ts';

const FLEET = Number(process.env.BENCH_FLEET ?? 1_000);
const DECISIONS = Number(process.env.BENCH_DECISIONS ?? 100_000);
const SCAN_DECISIONS = Number(process.env.BENCH_SCAN_DECISIONS ?? 20_000);
const SNAPSHOTS = Number(process.env.BENCH_SNAPSHOTS ?? 2_000);
const SEEDS = Number(process.env.BENCH_SEEDS ?? 5);
const TARGET = 20_000;
const BUSY = 0.85;
const GPU_TYPES = ['H100', 'H200', 'A100-80GB', 'A100-40GB', 'L40S', 'L4', 'A10G', 'T4'];

const catalog = loadCatalog().filter((o) => GPU_TYPES.includes(o.gpu));

interface Measure {
  operations: number;
  placed: number;
  noFit: number;
  wallMs: number;
  perSecond: number;
  p50Us: number;
  p99Us: number;
}

const MEASURES = ['index', 'churn', 'scan', 'snapshot'] as const;
type MeasureName = (typeof MEASURES)[number];
const LABELS: Record<MeasureName, string> = {
  index: 'decide (SlotIndex)',
  churn: 'churn step (free + decide + allocate)',
  scan: 'decide (placeContainer scan)',
  snapshot: 'snapshot + index build',
};

type Row = { seed: number; gpus: number } & Record<MeasureName, Measure>;

function fleetOf(random: Random): MemoryInstance[] {
  return Array.from({ length: FLEET }, (_, i) => {
    const o = random.pick(catalog);
    return {
      instanceId: `i-${String(i).padStart(5, '0')}`,
      vendor: o.vendor,
      region: o.region,
      capacityType: o.capacityType === 'spot' ? 'spot' : 'on-demand',
      gpu: o.gpu,
      gpusPerInstance: o.gpusPerInstance,
      microsPerHour: o.microsPerHour,
    };
  });
}

function wantsOf(random: Random, fleet: readonly MemoryInstance[], n: number): PlacementWants[] {
  const count = () => random.pick([1, 1, 1, 1, 2, 2, 4, 8]);
  return Array.from({ length: n }, () => {
    const first: GpuWant = { gpu: random.pick(GPU_TYPES), count: count() };
    const gpus = random.chance(1 / 3) ? [first, { gpu: random.pick(GPU_TYPES), count: count() }] : [first];
    const unique = gpus.filter((w, i) => gpus.findIndex((v) => v.gpu === w.gpu && v.count === w.count) === i);
    return random.chance(0.2) ? { gpus: unique, regions: [random.pick(fleet).region] } : { gpus: unique };
  });
}

/**
 * `decisions` place decisions on one seed's fleet, a random earlier container released first whenever the fleet
 * is busy enough; times the decision alone (`index`, `scan`) or the whole step (`churn`).
 */
function churn(seed: number, decisions: number, mode: 'index' | 'churn' | 'scan'): Measure {
  const random = new Random(seed);
  const fleet = fleetOf(random);
  const total = fleet.reduce((n, i) => n + i.gpusPerInstance, 0);
  const wants = wantsOf(random, fleet, decisions);
  const releases = Array.from({ length: decisions }, () => random.next());
  const capacity = new MemoryCapacity(fleet);
  const index = new SlotIndex(capacity.freeGpus());
  const live: { owner: string; instanceId: string; gpuIndices: number[] }[] = [];
  const samples = new Float64Array(decisions);
  let placed = 0;
  let noFit = 0;
  let busy = 0;
  for (let d = 0; d < decisions; d++) {
    const t0 = performance.now();
    if (busy >= BUSY * total && live.length > 0) {
      const k = Math.floor((releases[d] as number) * live.length);
      const gone = live[k] as (typeof live)[number];
      live[k] = live[live.length - 1] as (typeof live)[number];
      live.pop();
      capacity.free(gone.owner);
      const slot = index.get(gone.instanceId) as FreeGpuSlot;
      index.set({ ...slot, free: [...slot.free, ...gone.gpuIndices].sort((x, y) => x - y) });
      busy -= gone.gpuIndices.length;
    }
    const want = wants[d] as PlacementWants;
    const slots = mode === 'scan' ? capacity.freeGpus() : undefined;
    const t1 = performance.now();
    const placement = slots ? placeContainer(slots, want) : index.place(want);
    const t2 = performance.now();
    if (placement) {
      const owner = `ctr-${d}`;
      capacity.allocate(owner, placement.instanceId, placement.gpuIndices);
      index.take(placement);
      live.push({ owner, instanceId: placement.instanceId, gpuIndices: placement.gpuIndices });
      busy += placement.gpuIndices.length;
      placed++;
    } else noFit++;
    samples[d] = mode === 'churn' ? performance.now() - t0 : t2 - t1;
  }
  return measure(samples, placed, noFit);
}

function snapshots(seed: number, builds: number): Measure {
  const capacity = new MemoryCapacity(fleetOf(new Random(seed)));
  const samples = new Float64Array(builds);
  for (let b = 0; b < builds; b++) {
    const t0 = performance.now();
    new SlotIndex(capacity.freeGpus().map((slot) => ({ ...slot, free: [...slot.free] })));
    samples[b] = performance.now() - t0;
  }
  return measure(samples, 0, 0);
}

function measure(samples: Float64Array, placed: number, noFit: number): Measure {
  const wallMs = samples.reduce((a, b) => a + b, 0);
  const sorted = Float64Array.from(samples).sort();
  const quantileUs = (q: number) =>
    Math.round((sorted[Math.floor(q * (sorted.length - 1))] as number) * 10_000) / 10;
  return {
    operations: samples.length,
    placed,
    noFit,
    wallMs: Math.round(wallMs),
    perSecond: Math.round((samples.length * 1000) / wallMs),
    p50Us: quantileUs(0.5),
    p99Us: quantileUs(0.99),
  };
}

const rows: Row[] = [];
for (let seed = 1; seed <= SEEDS; seed++) {
  const row: Row = {
    seed,
    gpus: fleetOf(new Random(seed)).reduce((n, i) => n + i.gpusPerInstance, 0),
    index: churn(seed, DECISIONS, 'index'),
    churn: churn(seed, DECISIONS, 'churn'),
    scan: churn(seed, SCAN_DECISIONS, 'scan'),
    snapshot: snapshots(seed, SNAPSHOTS),
  };
  rows.push(row);
  process.stderr.write(
    `seed ${seed}: ${MEASURES.map((m) => `${LABELS[m]} ${row[m].perSecond}/s`).join(', ')}\n`,
  );
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)] as number;
const summary = Object.fromEntries(
  MEASURES.map((m) => [
    m,
    {
      perSecondMedian: median(rows.map((r) => r[m].perSecond)),
      perSecondMin: Math.min(...rows.map((r) => r[m].perSecond)),
      p50UsMedian: median(rows.map((r) => r[m].p50Us)),
      p99UsMedian: median(rows.map((r) => r[m].p99Us)),
    },
  ]),
) as Record<
  MeasureName,
  { perSecondMedian: number; perSecondMin: number; p50UsMedian: number; p99UsMedian: number }
>;

mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(
  `./results/placement-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
  import.meta.url,
);
writeFileSync(
  file,
  `${JSON.stringify({ node: process.version, fleet: FLEET, busyShare: BUSY, target: TARGET, labels: LABELS, summary, rows }, null, 2)}\n`,
);

const table = new Table({
  head: ['seed', 'measure', 'operations', 'placed', 'no fit', 'timed ms', 'per second', 'p50 µs', 'p99 µs'],
  style: { head: [], border: [] },
});
for (const r of rows)
  for (const m of MEASURES)
    table.push([
      r.seed,
      LABELS[m],
      r[m].operations,
      r[m].placed,
      r[m].noFit,
      r[m].wallMs,
      r[m].perSecond,
      r[m].p50Us,
      r[m].p99Us,
    ]);
for (const m of MEASURES)
  table.push([
    'median',
    LABELS[m],
    '',
    '',
    '',
    '',
    summary[m].perSecondMedian,
    summary[m].p50UsMedian,
    summary[m].p99UsMedian,
  ]);
console.log(
  `Container placement: ${FLEET}-instance fleet (${GPU_TYPES.length} GPU types, ~${median(rows.map((r) => r.gpus))} GPUs), ${Math.round(BUSY * 100)} % of GPUs busy, ${rows.length} seeds; target ≥ ${TARGET.toLocaleString('en-US')} decisions/s`,
);
console.log(table.toString());
console.log(
  `decisions/s (median): SlotIndex ${summary.index.perSecondMedian}, churn step ${summary.churn.perSecondMedian}, scan ${summary.scan.perSecondMedian} (target ${TARGET})`,
);
console.log(`written ${file.pathname}`);
