/**
 * `npm run bench:sim`: lifecycle events the simulated clouds process per second of wall time on the virtual
 * clock, holding a 1,000-instance fleet for a simulated week across aws, gcp and azure (half spot, replayed from
 * the real traces). A fleet keeper tops the fleet up every minute (replacing preempted, failed and churned
 * instances) and retires 2 % of it every 10 minutes; every event is consumed through the contract's `events()`.
 * Writes bench/results/sim-<timestamp>.json and prints a table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import Table from 'cli-table3';
import { stopwatch, VirtualClock } from '../lib/clock.ts';
import { Random } from '../lib/random.ts';
import { loadCatalog } from '../providers/catalog/load-catalog.ts';
import type { Offering } from '../providers/catalog/offering.ts';
import type { ProviderEvent } from '../providers/provider.ts';
import { ProviderError } from '../providers/provider-errors.ts';
import { createSimClouds } from '../providers/sim/sim-clouds.ts';

const FLEET = Number(process.env.BENCH_FLEET ?? 1_000);
const DAYS = Number(process.env.BENCH_DAYS ?? 7);
const SEEDS = Number(process.env.BENCH_SEEDS ?? 5);
const MINUTE = 60_000;
const START = Date.UTC(2026, 10, 23);

const catalog = loadCatalog();

interface Row {
  seed: number;
  wallMs: number;
  events: number;
  eventsPerSecond: number;
  simulatedHours: number;
  speedUp: number;
  provisionCalls: number;
  preemptions: number;
  bootFailures: number;
  capacityErrors: number;
  peakTimers: number;
}

async function runOnce(seed: number): Promise<Row> {
  const clock = new VirtualClock(START);
  const clouds = createSimClouds({
    clock,
    offerings: catalog,
    scenario: {
      seed,
      settings: Object.fromEntries(['aws', 'gcp', 'azure'].map((v) => [v, { throttle: null, quotas: [] }])),
    },
  });
  const byVendor = new Map(clouds.map((c) => [c.vendor, c]));
  const random = new Random(seed);
  // Single-GPU offerings in many regions, half of them spot: each slot of the fleet is bound to one.
  const pool = catalog.filter((o) => o.gpusPerInstance === 1);
  const spot = pool.filter((o) => o.capacityType === 'spot');
  const onDemand = pool.filter((o) => o.capacityType === 'on-demand');
  const slots: Offering[] = Array.from({ length: FLEET }, (_, i) =>
    random.pick(i % 2 === 0 ? spot : onDemand),
  );

  const live = new Map<string, { vendor: string; slot: number }>();
  const empty = new Set<number>(slots.map((_, i) => i));
  let events = 0;
  let preemptions = 0;
  let bootFailures = 0;
  const stop = new AbortController();
  const consume = (vendor: string) =>
    (async () => {
      for await (const event of byVendor.get(vendor)?.events({ signal: stop.signal }) ?? []) {
        events++;
        onEvent(event);
      }
    })();
  const onEvent = (event: ProviderEvent) => {
    if (event.kind === 'interruption-notice') preemptions++;
    if (event.kind === 'failure') bootFailures++;
    if (event.kind === 'state-changed' && event.to === 'terminated') {
      const owned = live.get(event.instanceId);
      if (owned) {
        live.delete(event.instanceId);
        empty.add(owned.slot);
      }
    }
  };
  const readers = clouds.map((c) => consume(c.vendor));

  let provisionCalls = 0;
  let capacityErrors = 0;
  let key = 0;
  let peakTimers = 0;
  const end = START + DAYS * 24 * 60 * MINUTE;
  const elapsed = stopwatch();
  for (let t = START; t < end; t += MINUTE) {
    await clock.advanceTo(t);
    if ((t - START) % (10 * MINUTE) === 0) {
      const retire = [...live.entries()].filter(() => random.chance(0.02));
      for (const [id, owned] of retire) await byVendor.get(owned.vendor)?.terminate([id]);
    }
    for (const slot of [...empty]) {
      const offering = slots[slot] as Offering;
      provisionCalls++;
      try {
        const [instance] = (await byVendor
          .get(offering.vendor)
          ?.provision({ offeringId: offering.id, count: 1, idempotencyKey: `k${key++}` })) ?? [undefined];
        if (instance) {
          live.set(instance.id, { vendor: offering.vendor, slot });
          empty.delete(slot);
        }
      } catch (error) {
        if (!(error instanceof ProviderError)) throw error;
        capacityErrors++;
      }
    }
    peakTimers = Math.max(peakTimers, clock.pendingTimers());
  }
  await clock.advanceTo(end);
  const wallMs = Math.max(1, elapsed());
  stop.abort();
  for (const cloud of clouds) await cloud.close();
  await Promise.all(readers);
  return {
    seed,
    wallMs,
    events,
    eventsPerSecond: Math.round((events * 1000) / wallMs),
    simulatedHours: DAYS * 24,
    speedUp: Math.round((end - START) / wallMs),
    provisionCalls,
    preemptions,
    bootFailures,
    capacityErrors,
    peakTimers,
  };
}

const rows: Row[] = [];
for (let seed = 1; seed <= SEEDS; seed++) {
  const row = await runOnce(seed);
  rows.push(row);
  process.stderr.write(`seed ${seed}: ${row.events} events in ${row.wallMs} ms (${row.eventsPerSecond}/s)\n`);
}
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)] as number;
const summary = {
  fleet: FLEET,
  simulatedDays: DAYS,
  seeds: rows.length,
  eventsPerSecondMedian: median(rows.map((r) => r.eventsPerSecond)),
  eventsPerSecondMin: Math.min(...rows.map((r) => r.eventsPerSecond)),
  wallMsMedian: median(rows.map((r) => r.wallMs)),
  eventsMedian: median(rows.map((r) => r.events)),
  speedUpMedian: median(rows.map((r) => r.speedUp)),
  preemptionsMedian: median(rows.map((r) => r.preemptions)),
};

mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(`./results/sim-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, import.meta.url);
writeFileSync(file, `${JSON.stringify({ node: process.version, summary, rows }, null, 2)}\n`);

const table = new Table({
  head: [
    'seed',
    'events',
    'wall ms',
    'events/s',
    'speed-up',
    'provisions',
    'preemptions',
    'boot fails',
    'no capacity',
  ],
  style: { head: [], border: [] },
});
for (const r of rows)
  table.push([
    r.seed,
    r.events,
    r.wallMs,
    r.eventsPerSecond,
    `${r.speedUp}×`,
    r.provisionCalls,
    r.preemptions,
    r.bootFailures,
    r.capacityErrors,
  ]);
table.push([
  'median',
  summary.eventsMedian,
  summary.wallMsMedian,
  summary.eventsPerSecondMedian,
  `${summary.speedUpMedian}×`,
  '',
  summary.preemptionsMedian,
  '',
  '',
]);
console.log(`Simulated clouds: ${FLEET}-instance fleet, ${DAYS} simulated days, ${rows.length} seeds`);
console.log(table.toString());
console.log(`written ${file.pathname}`);
