/**
 * `npm run bench:executor`, unisolated and then in bubblewrap (where the machine allows: root and bubblewrap): the
 * local executor's cold start (placed → ready: spawn a container, import the
 * bundle, find the function) over 50 containers started one after another, and the warm invoke round trip
 * (executor → container → executor over IPC) over 2,000 sequential calls of a trivial function. Writes
 * bench/results/executor-<timestamp>.json and prints a table.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { x as extract } from 'tar';
import { LocalExecutor } from '../agent/executor/local-executor.ts';
import { BubblewrapSandbox } from '../agent/executor/sandbox/bubblewrap.ts';
import type { ContainerSpec } from '../runtime/executor/executor.ts';
import { buildLayer } from '../sdk/cli/image-layer.ts';

const CONTAINERS = Number(process.env.BENCH_CONTAINERS ?? 50);
const CALLS = Number(process.env.BENCH_CALLS ?? 2_000);
const WARM_UP_CALLS = 200;

interface Row {
  measure: string;
  samples: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

function summarize(measure: string, samples: number[]): Row {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => round(sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] as number);
  return {
    measure,
    samples: sorted.length,
    p50Ms: at(50),
    p95Ms: at(95),
    p99Ms: at(99),
    maxMs: round(sorted[sorted.length - 1] as number),
  };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-executor-bench-'));
const bundlePath = join(dir, 'app.mjs');
writeFileSync(bundlePath, 'export function echo(value) {\n  return value;\n}\n');
const spec = (i: string, overrides: Partial<ContainerSpec> = {}): ContainerSpec => ({
  containerId: `ctr_bench_${i.replace(/[^A-Za-z0-9_.-]+/g, '_')}`,
  tenantId: 'tenant_bench',
  app: 'bench',
  functionName: 'echo',
  bundleId: 'tenant/local',
  bundlePath,
  instanceId: 'inst_bench',
  gpuIndices: [0],
  env: {},
  concurrency: 1,
  cpu: 1,
  memoryMiB: 4096,
  network: 'egress',
  ...overrides,
});

const rows: Row[] = [];
const callsPerSecond: Record<string, number> = {};

/** Cold starts one after another, then warm round trips on one container, through `executor`. */
async function measure(
  mode: string,
  executor: LocalExecutor,
  overrides: Partial<ContainerSpec> = {},
): Promise<void> {
  try {
    const coldStarts: number[] = [];
    const firstCalls: number[] = [];
    for (let i = 0; i < CONTAINERS; i++) {
      const started = performance.now();
      const container = executor.start(spec(`${mode}_${i}`, overrides));
      await container.ready;
      coldStarts.push(performance.now() - started);
      const first = performance.now();
      await container.invoke(`first_${i}`, [i]);
      firstCalls.push(performance.now() - first);
      await container.stop();
    }
    rows.push(summarize(`${mode}: cold start (placed → ready)`, coldStarts));
    rows.push(summarize(`${mode}: first call after ready`, firstCalls));
    process.stderr.write(`${mode} cold start: ${CONTAINERS} containers\n`);

    const container = executor.start(spec(`${mode}_warm`, overrides));
    await container.ready;
    for (let i = 0; i < WARM_UP_CALLS; i++) await container.invoke(`warm_${i}`, [i]);
    const roundTrips: number[] = [];
    const allCalls = performance.now();
    for (let i = 0; i < CALLS; i++) {
      const started = performance.now();
      const echoed = (await container.invoke(`call_${i}`, [{ i, text: 'hello' }])) as { i: number };
      roundTrips.push(performance.now() - started);
      if (echoed.i !== i) throw new Error(`call ${i} came back as ${JSON.stringify(echoed)}`);
    }
    callsPerSecond[mode] = Math.round((CALLS * 1000) / (performance.now() - allCalls));
    rows.push(summarize(`${mode}: warm invoke round trip`, roundTrips));
    process.stderr.write(`${mode} warm invoke: ${CALLS} calls\n`);
  } finally {
    await executor.close();
  }
}

let isolation = 'bubblewrap';
/** The packages of the layer measured (`BENCH_LAYER_NPM=a@1,b@2`): a typical server-side list. */
const LAYER_NPM = (process.env.BENCH_LAYER_NPM ?? 'zod@4,pino@10,ws@8').split(',');
const layer: { npm: string[]; buildMs?: number; unpackMs?: number; bytes?: number } = { npm: LAYER_NPM };
try {
  await measure('unisolated', new LocalExecutor({ workRoot: join(dir, 'containers') }));
  let sandbox: BubblewrapSandbox | undefined;
  try {
    sandbox = BubblewrapSandbox.detect();
  } catch (error) {
    isolation = `not measured: ${(error as Error).message}`;
  }
  if (sandbox) await measure('bubblewrap', new LocalExecutor({ workRoot: join(dir, 'containers'), sandbox }));
  // An image layer of typical packages: built (npm install, then packed) as `gpubroker run` does, unpacked as an
  // agent does, then containers whose bundle imports them at load.
  const recipe = { base: 'node20' as const, npm: LAYER_NPM };
  const buildDir = join(dir, 'layer-build');
  mkdirSync(buildDir);
  let started = performance.now();
  const tarball = await buildLayer(recipe, buildDir);
  layer.buildMs = Math.round(performance.now() - started);
  layer.bytes = statSync(tarball).size;
  const unpacked = join(dir, 'layer');
  mkdirSync(unpacked);
  started = performance.now();
  await extract({ file: tarball, cwd: unpacked, preservePaths: false, preserveOwner: false, umask: 0o022 });
  layer.unpackMs = Math.round(performance.now() - started);
  process.stderr.write(
    `layer ${LAYER_NPM.join(' ')}: built in ${layer.buildMs} ms, unpacked in ${layer.unpackMs} ms\n`,
  );
  const layeredBundle = join(dir, 'layered.mjs');
  // As the Image docs say to: the packages are imported inside the function, so the first call pays for loading
  // them, not the start.
  const imports = LAYER_NPM.map((spec) => `import('${spec.replace(/(.)@.*$/, '$1')}')`).join(', ');
  writeFileSync(
    layeredBundle,
    `export async function echo(value) {\n  await Promise.all([${imports}]);\n  return value;\n}\n`,
  );
  const layered = { bundlePath: layeredBundle, nodeModulesPath: join(unpacked, 'node_modules') };
  await measure('unisolated, with layer', new LocalExecutor({ workRoot: join(dir, 'containers') }), layered);
  if (sandbox)
    await measure(
      'bubblewrap, with layer',
      new LocalExecutor({ workRoot: join(dir, 'containers'), sandbox }),
      layered,
    );
} finally {
  rmSync(dir, { recursive: true, force: true });
}

mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(
  `./results/executor-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
  import.meta.url,
);
writeFileSync(
  file,
  `${JSON.stringify({ node: process.version, isolation, layer, containers: CONTAINERS, calls: CALLS, callsPerSecond, rows }, null, 2)}\n`,
);
const table = new Table({
  head: ['measure', 'samples', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
  style: { head: [], border: [] },
});
for (const r of rows) table.push([r.measure, r.samples, r.p50Ms, r.p95Ms, r.p99Ms, r.maxMs]);
console.log(
  `Local executor (node ${process.version}), unisolated and in bubblewrap (${isolation}); sequential warm calls/s: ${JSON.stringify(callsPerSecond)}`,
);
console.log(table.toString());
console.log(
  `image layer ${LAYER_NPM.join(' ')}: built in ${layer.buildMs} ms (npm install with a warm npm cache, then packed; ${layer.bytes} bytes), unpacked in ${layer.unpackMs} ms`,
);
console.log(`written ${file.pathname}`);
