/**
 * `npm run bench:broker`: the broker's two speed figures.
 *
 * 1. Lease request to ready when the warm buffer has capacity: 1,000 `POST /v1/leases` over real HTTP on
 *    127.0.0.1, each answered `ready` at once (then released), on PGlite in a data directory (the embedded
 *    default) and on in-memory PGlite. Target: p99 ≤ 50 ms on PGlite.
 * 2. Tick time with the full catalog: every vendor, region and offering of the bundled catalog, a warm buffer on
 *    six GPU types and open leases, 20 ticks on a virtual clock (boots happen between ticks).
 *
 * Writes bench/results/broker-<timestamp>.json and prints a table.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { type Lease, leaseRequestSchema } from '../broker/api/schemas.ts';
import { startServer } from '../broker/server.ts';
import { VirtualClock } from '../lib/clock.ts';
import { simScenario } from '../providers/sim/scenario.ts';

const REQUESTS = Number(process.env.BENCH_LEASES ?? 1_000);
const TICKS = Number(process.env.BENCH_TICKS ?? 20);
const START = Date.UTC(2026, 10, 23);

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
const round = (ms: number) => Math.round(ms * 100) / 100;

interface LatencyRow {
  storage: string;
  requests: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  requestsPerSecond: number;
}

async function leaseLatency(storage: 'pglite-dir' | 'pglite-memory'): Promise<LatencyRow> {
  const dataDir = storage === 'pglite-dir' ? mkdtempSync(join(tmpdir(), 'gpubroker-bench-')) : undefined;
  const clock = new VirtualClock(START);
  const server = await startServer({
    port: 0,
    clock,
    seed: 1,
    schedule: false,
    ...(dataDir ? { dataDir } : {}),
    scenario: simScenario({
      seed: 1,
      vendors: ['aws'],
      spot: { replay: false },
      settings: { aws: { throttle: null, bootFailureRate: 0 } },
      stock: { rules: [{ match: { instanceType: 'p5.4xlarge' }, onDemandPerZone: 0 }] },
    }),
  });
  try {
    const { broker } = server;
    await broker.setPolicy(
      {
        buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 32, fraction: 0 } } },
        spotMaxShare: 0,
        vendors: { allow: ['aws'], deny: [] },
        regions: { allow: ['us-east-1'], deny: [] },
      },
      'bench',
    );
    // Fill the warm buffer: plan, let the instances boot, and let the broker see them run.
    await broker.loop.tick();
    await clock.advanceBy(15 * 60_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const token = (await broker.tokens.create('bench', 'tenant')).token;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const latencies: number[] = [];
    const began = performance.now();
    for (let i = 0; i < REQUESTS; i++) {
      const body = JSON.stringify({ gpu: 'H100', count: 1 + (i % 8), placement: 'single-node' });
      const t0 = performance.now();
      const response = await fetch(`${server.url}/v1/leases`, { method: 'POST', headers, body });
      const lease = (await response.json()) as Lease;
      latencies.push(performance.now() - t0);
      if (lease.status !== 'ready')
        throw new Error(`lease ${i} is ${lease.status}: the buffer did not serve it`);
      await fetch(`${server.url}/v1/leases/${lease.id}`, { method: 'DELETE', headers }).then((r) => r.text());
    }
    const wallMs = performance.now() - began;
    latencies.sort((a, b) => a - b);
    return {
      storage,
      requests: REQUESTS,
      p50Ms: round(quantile(latencies, 0.5)),
      p90Ms: round(quantile(latencies, 0.9)),
      p99Ms: round(quantile(latencies, 0.99)),
      maxMs: round(latencies.at(-1) ?? 0),
      requestsPerSecond: Math.round((REQUESTS * 1000) / wallMs),
    };
  } finally {
    await server.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

interface TickSummary {
  offerings: number;
  ticks: number;
  tickMsMedian: number;
  tickMsP95: number;
  solveMsMedian: number;
  solveMsP95: number;
  instancesHeld: number;
}

async function fullCatalogTicks(): Promise<TickSummary> {
  const clock = new VirtualClock(START);
  const server = await startServer({ port: 0, clock, seed: 2, schedule: false });
  try {
    const { broker } = server;
    const gpus = ['H100', 'A100-80GB', 'A100-40GB', 'L4', 'A10G', 'T4'];
    await broker.setPolicy(
      {
        buffer: {
          default: { gpus: 0, fraction: 0 },
          perGpu: Object.fromEntries(gpus.map((gpu) => [gpu, { gpus: 8, fraction: 0.1 }])),
        },
        warmRegionGroups: ['us', 'eu'],
      },
      'bench',
    );
    const tenant = await broker.tokens.authenticate((await broker.tokens.create('bench', 'operator')).token);
    if (!tenant) throw new Error('the bench token does not authenticate');
    const tickMs: number[] = [];
    const solveMs: number[] = [];
    for (let i = 0; i < TICKS; i++) {
      // Leases arrive and leave between ticks so each plan differs from the last.
      for (let j = 0; j < 4; j++)
        await broker.leases.request(
          tenant,
          leaseRequestSchema.parse({ gpu: gpus[(i + j) % gpus.length], count: 1 + ((i * 3 + j) % 4) }),
        );
      const report = await broker.loop.tick();
      tickMs.push(report.tickMs);
      solveMs.push(report.solveMs);
      await clock.advanceBy(5 * 60_000);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    tickMs.sort((a, b) => a - b);
    solveMs.sort((a, b) => a - b);
    return {
      offerings: broker.loop.offerings().length,
      ticks: TICKS,
      tickMsMedian: quantile(tickMs, 0.5),
      tickMsP95: quantile(tickMs, 0.95),
      solveMsMedian: quantile(solveMs, 0.5),
      solveMsP95: quantile(solveMs, 0.95),
      instancesHeld: broker.fleet.all().length,
    };
  } finally {
    await server.close();
  }
}

const latency: LatencyRow[] = [];
for (const storage of ['pglite-dir', 'pglite-memory'] as const) {
  latency.push(await leaseLatency(storage));
  process.stderr.write(`lease latency on ${storage}: done\n`);
}
const ticks = await fullCatalogTicks();

mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(
  `./results/broker-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
  import.meta.url,
);
writeFileSync(file, `${JSON.stringify({ node: process.version, latency, ticks }, null, 2)}\n`);

const latencyTable = new Table({
  head: ['storage', 'requests', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'leases/s (with release)'],
  style: { head: [], border: [] },
});
for (const r of latency)
  latencyTable.push([r.storage, r.requests, r.p50Ms, r.p90Ms, r.p99Ms, r.maxMs, r.requestsPerSecond]);
console.log('Lease request → ready from the warm buffer (HTTP on 127.0.0.1, sequential)');
console.log(latencyTable.toString());
const tickTable = new Table({
  head: ['offerings', 'ticks', 'tick p50 ms', 'tick p95 ms', 'solve p50 ms', 'solve p95 ms', 'instances'],
  style: { head: [], border: [] },
});
tickTable.push([
  ticks.offerings,
  ticks.ticks,
  ticks.tickMsMedian,
  ticks.tickMsP95,
  ticks.solveMsMedian,
  ticks.solveMsP95,
  ticks.instancesHeld,
]);
console.log('Control-loop tick with the full catalog');
console.log(tickTable.toString());
console.log(`written ${file.pathname}`);
