/**
 * `npm run bench:broker`: the broker's speed figures.
 *
 * 1. Lease request to ready when the warm buffer has capacity: 1,000 `POST /v1/leases` over real HTTP on
 *    127.0.0.1, each answered `ready` at once (then released), on PGlite in a data directory (the embedded
 *    default) and on in-memory PGlite. Target: p99 ≤ 50 ms on PGlite.
 * 2. Tick time with the full catalog: every vendor, region and offering of the bundled catalog, a warm buffer on
 *    six GPU types and open leases, 20 ticks on a virtual clock (boots happen between ticks).
 * 3. Crash and restart: a real `gpubroker serve` child process on a PGlite data directory with two ready leases,
 *    killed with SIGKILL at seeded moments and started again on the same directory (`BENCH_RESTARTS` times, 7 by
 *    default), with the simulated clouds in the broker's process (the embedded default) and in their own
 *    (`clouds serve`). Figures: restart time (process start → first 2xx of `/healthz`; target ≤ 2 s), and the
 *    billed time each ready lease lost per crash, against the time the broker was down (kill → first answer;
 *    target: lost ≤ down + one meter heartbeat).
 *
 * 4. An idle broker: `gpubroker serve` as `npm start` runs it (the embedded defaults, a fresh data directory, then
 *    started again on it), left alone for `BENCH_IDLE_S` seconds (60) after it answers: its resident memory (VmRSS of
 *    the broker process; the local agent host is a process of its own, reported beside it) and the CPU time it used
 *    while idle (utime + stime from /proc). Targets: ≤ 250 MB and near-zero CPU.
 *
 * `BENCH_ONLY=latency|ticks|restart|idle` runs one part; `BENCH_GPUBROKER_BIN` runs part 3 against another build's
 * `bin/gpubroker.js` (for before/after figures). Writes bench/results/broker-<timestamp>.json and prints tables.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { type Lease, leaseRequestSchema } from '../broker/api/schemas.ts';
import { openDatabase } from '../broker/db/open-database.ts';
import { startServer } from '../broker/server.ts';
import { VirtualClock } from '../lib/clock.ts';
import { Random } from '../lib/random.ts';
import { simScenario } from '../providers/sim/scenario.ts';
import { gapsAfterCrashes, peakBilledGpus } from '../runtime/meter/interval-checks.ts';
import { UsageStore } from '../runtime/meter/usage-store.ts';
import { type AnsweringProcess, freePort, spawnUntilAnswer, stopCli } from '../test/cli-process.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY } from '../test/fast-aws.ts';

const REQUESTS = Number(process.env.BENCH_LEASES ?? 1_000);
const TICKS = Number(process.env.BENCH_TICKS ?? 20);
const RESTARTS = Number(process.env.BENCH_RESTARTS ?? 7);
const ONLY = process.env.BENCH_ONLY;
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 60);
const BIN = process.env.BENCH_GPUBROKER_BIN;
/** The default meter heartbeat, so that the lost time is the embedded default's. */
const HEARTBEAT_MS = 5_000;
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
      offerings: broker.offerings.all().length,
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

interface RestartRow {
  clouds: 'embedded' | 'remote';
  restarts: number;
  restartMsMedian: number;
  restartMsMin: number;
  restartMsMax: number;
  /** Kill → first answer of the new process. */
  downMsMedian: number;
  heartbeatMs: number;
  /** Billed time a ready lease lost per crash (from its last checkpoint to its metering again). */
  lostMsPerCrashMedian: number;
  lostMsPerCrashMax: number;
  /** The most any crash lost beyond the time the broker was down (target: ≤ one heartbeat). */
  lostBeyondDownMsMax: number;
  /** Whether both leases were ready after every restart. */
  leasesKept: boolean;
  /** The most GPUs a lease of 8 was billed for at one moment (8: nothing billed twice). */
  peakBilledGpus: number;
}

const median = (values: number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A broker with two ready leases, killed with SIGKILL and started again `RESTARTS` times; the restart time of each
 * start, and the billed time the leases lost per crash, read from its database at the end.
 */
async function crashRestarts(clouds: 'embedded' | 'remote'): Promise<RestartRow> {
  const dir = mkdtempSync(join(tmpdir(), 'gpubroker-bench-restart-'));
  const scenarioFile = join(dir, 'scenario.json');
  writeFileSync(scenarioFile, JSON.stringify(FAST_AWS_SCENARIO));
  const dataDir = join(dir, 'data');
  const bin = BIN ? { bin: BIN } : {};
  let cloudsProcess: AnsweringProcess | undefined;
  let broker: AnsweringProcess | undefined;
  try {
    let providers = ['--scenario', scenarioFile];
    if (clouds === 'remote') {
      const cloudsUrl = `http://127.0.0.1:${await freePort()}`;
      cloudsProcess = await spawnUntilAnswer(
        ['clouds', 'serve', '--port', cloudsUrl.split(':')[2] as string, '--scenario', scenarioFile],
        { url: cloudsUrl, probe: '/v1/vendors', ...bin },
      );
      providers = ['--providers', cloudsUrl];
    }
    const url = `http://127.0.0.1:${await freePort()}`;
    const args = [
      'serve',
      ...['--port', url.split(':')[2] as string, '--data-dir', dataDir],
      ...['--meter-heartbeat', `${HEARTBEAT_MS}ms`, ...providers],
    ];
    broker = await spawnUntilAnswer(args, { url, ...bin });
    const token = readFileSync(join(dataDir, 'operator-token'), 'utf8').trim();
    const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (!response.ok)
        throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
      return (await response.json()) as T;
    };
    await api('PUT', '/v1/policy', FAST_POLICY);
    const leases: Lease[] = [];
    for (let i = 0; i < 2; i++)
      leases.push(
        await api<Lease>('POST', '/v1/leases', { gpu: 'H100', count: 8, placement: 'single-node' }),
      );
    const statuses = async () =>
      Promise.all(leases.map(async (l) => (await api<Lease>('GET', `/v1/leases/${l.id}`)).status));
    for (let waited = 0; !(await statuses()).every((s) => s === 'ready'); waited += 200) {
      if (waited > 60_000) throw new Error(`the leases did not get ready: ${await statuses()}`);
      await sleep(200);
    }

    const random = new Random(7);
    const crashes: { killedAtMs: number; deadMs: number; restartMs: number; downMs: number }[] = [];
    let leasesKept = true;
    for (let n = 0; n < RESTARTS; n++) {
      await sleep(random.int(2_000, 6_000));
      const killedAtMs = Date.now();
      await stopCli(broker, 'SIGKILL');
      broker = await spawnUntilAnswer(args, { url, ...bin });
      crashes.push({
        killedAtMs,
        deadMs: broker.spawnedAtMs - killedAtMs,
        restartMs: broker.answeredAtMs - broker.spawnedAtMs,
        downMs: broker.answeredAtMs - killedAtMs,
      });
      leasesKept &&= (await statuses()).every((s) => s === 'ready');
      process.stderr.write(
        `restart ${n + 1}/${RESTARTS} (${clouds} clouds): ${crashes.at(-1)?.restartMs} ms\n`,
      );
    }
    await sleep(1_000);
    await stopCli(broker);
    broker = undefined;

    const database = await openDatabase({ dataDir });
    const lost: number[] = [];
    const beyond: number[] = [];
    let peak = 0;
    try {
      const intervals = await new UsageStore(database.db).intervals();
      for (const lease of leases) {
        const spans = intervals
          .filter((u) => u.subject === lease.id)
          .map((u) => ({ startMs: u.startMs, endMs: u.observedEndMs, gpus: u.gpus, endedBy: u.endedBy }));
        peak = Math.max(peak, peakBilledGpus(spans));
        for (const gap of gapsAfterCrashes(spans)) {
          const crash = crashes.find((c) => gap.fromMs <= c.killedAtMs && c.killedAtMs <= gap.toMs);
          if (!crash) continue;
          lost.push(gap.toMs - gap.fromMs);
          beyond.push(gap.toMs - gap.fromMs - crash.downMs);
        }
      }
    } finally {
      await database.close();
    }
    const restartMs = crashes.map((c) => c.restartMs);
    return {
      clouds,
      restarts: crashes.length,
      restartMsMedian: median(restartMs),
      restartMsMin: Math.min(...restartMs),
      restartMsMax: Math.max(...restartMs),
      downMsMedian: median(crashes.map((c) => c.downMs)),
      heartbeatMs: HEARTBEAT_MS,
      lostMsPerCrashMedian: lost.length > 0 ? median(lost) : Number.NaN,
      lostMsPerCrashMax: lost.length > 0 ? Math.max(...lost) : Number.NaN,
      lostBeyondDownMsMax: beyond.length > 0 ? Math.max(...beyond) : Number.NaN,
      leasesKept,
      peakBilledGpus: peak,
    };
  } finally {
    if (broker) await stopCli(broker, 'SIGKILL');
    if (cloudsProcess) await stopCli(cloudsProcess, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

interface IdleRow {
  start: 'fresh' | 'restart';
  idleSeconds: number;
  rssMb: number;
  agentHostRssMb: number | null;
  cpuSecondsIdle: number;
  cpuPercentIdle: number;
}

/** VmRSS in MB (10^6 bytes) and utime + stime in seconds of a process, from /proc. */
function processUse(pid: number): { rssMb: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { rssMb: Math.round((rssKb * 1024) / 1e5) / 10, cpuSeconds: ticks / 100 };
}

function childPids(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text ? text.split(/\s+/).map(Number) : [];
}

/** The broker of `npm start` left idle: fresh, then restarted on its data directory. */
async function idleBroker(): Promise<IdleRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'gpubroker-bench-idle-'));
  const rows: IdleRow[] = [];
  try {
    for (const start of ['fresh', 'restart'] as const) {
      const url = `http://127.0.0.1:${await freePort()}`;
      const broker = await spawnUntilAnswer(
        ['serve', '--port', url.split(':')[2] as string, '--data-dir', join(dir, 'data')],
        { url },
      );
      try {
        const pid = broker.child.pid as number;
        // Settle first (the first tick, the agent host's start), then measure a window of doing nothing.
        await new Promise((resolve) => setTimeout(resolve, 10_000));
        const before = processUse(pid);
        await new Promise((resolve) => setTimeout(resolve, IDLE_S * 1_000));
        const after = processUse(pid);
        const hostPid = childPids(pid).find((child) =>
          readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('agent'),
        );
        const cpu = after.cpuSeconds - before.cpuSeconds;
        rows.push({
          start,
          idleSeconds: IDLE_S,
          rssMb: after.rssMb,
          agentHostRssMb: hostPid === undefined ? null : processUse(hostPid).rssMb,
          cpuSecondsIdle: Math.round(cpu * 100) / 100,
          cpuPercentIdle: Math.round((cpu / IDLE_S) * 1_000) / 10,
        });
      } finally {
        await stopCli(broker, 'SIGTERM');
      }
      process.stderr.write(`idle broker (${start}): done\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

const latency: LatencyRow[] = [];
if (!ONLY || ONLY === 'latency')
  for (const storage of ['pglite-dir', 'pglite-memory'] as const) {
    latency.push(await leaseLatency(storage));
    process.stderr.write(`lease latency on ${storage}: done\n`);
  }
const ticks = !ONLY || ONLY === 'ticks' ? await fullCatalogTicks() : undefined;
const restart: RestartRow[] = [];
if (!ONLY || ONLY === 'restart')
  for (const clouds of ['embedded', 'remote'] as const) restart.push(await crashRestarts(clouds));
const idle = !ONLY || ONLY === 'idle' ? await idleBroker() : [];

mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(
  `./results/broker-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
  import.meta.url,
);
writeFileSync(
  file,
  `${JSON.stringify({ node: process.version, ...(BIN ? { bin: BIN } : {}), latency, ticks, restart, idle }, null, 2)}\n`,
);

const latencyTable = new Table({
  head: ['storage', 'requests', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'leases/s (with release)'],
  style: { head: [], border: [] },
});
for (const r of latency)
  latencyTable.push([r.storage, r.requests, r.p50Ms, r.p90Ms, r.p99Ms, r.maxMs, r.requestsPerSecond]);
if (latency.length > 0) {
  console.log('Lease request → ready from the warm buffer (HTTP on 127.0.0.1, sequential)');
  console.log(latencyTable.toString());
}
if (ticks) {
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
}
if (restart.length > 0) {
  const restartTable = new Table({
    head: [
      'clouds',
      'restarts',
      'restart p50 ms',
      'min',
      'max',
      'down p50 ms',
      'lost/crash p50 ms',
      'lost max',
      'lost − down max',
      'leases kept',
      'peak GPUs',
    ],
    style: { head: [], border: [] },
  });
  for (const r of restart)
    restartTable.push([
      r.clouds,
      r.restarts,
      r.restartMsMedian,
      r.restartMsMin,
      r.restartMsMax,
      r.downMsMedian,
      r.lostMsPerCrashMedian,
      r.lostMsPerCrashMax,
      r.lostBeyondDownMsMax,
      r.leasesKept ? 'yes' : 'no',
      r.peakBilledGpus,
    ]);
  console.log(
    `SIGKILL and restart of gpubroker serve on PGlite (process start → first 2xx; heartbeat ${HEARTBEAT_MS} ms)`,
  );
  console.log(restartTable.toString());
}
console.log(`written ${file.pathname}`);

if (idle.length > 0) {
  const idleTable = new Table({
    head: ['start', 'idle s', 'broker RSS MB (≤ 250)', 'agent host RSS MB', 'CPU s idle', 'CPU % idle'],
    style: { head: [], border: [] },
  });
  for (const r of idle)
    idleTable.push([
      r.start,
      r.idleSeconds,
      r.rssMb,
      r.agentHostRssMb ?? '–',
      r.cpuSecondsIdle,
      r.cpuPercentIdle,
    ]);
  console.log('An idle broker (`npm start`: embedded defaults)');
  console.log(idleTable.toString());
}
