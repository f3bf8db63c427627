/**
 * `npm run bench:functions`: functions end to end over HTTP on 127.0.0.1, containers as child processes.
 *
 * 1. Warm `remote` round trip: 300 sequential calls of a trivial function on a warm container (target p50 ≤ 5 ms).
 * 2. `map` over 10,000 trivial inputs: inputs per second and per-input overhead (wall time / inputs).
 *
 * The broker runs in this process (PGlite, simulated AWS with 2 s boots and an 8-GPU H100 warm buffer).
 * Writes bench/results/functions-<timestamp>.json and prints a table.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { startServer } from '../broker/server.ts';
import { simScenario } from '../providers/sim/scenario.ts';
import type { FunctionHandle } from '../sdk/app.ts';
import { deployModule } from '../sdk/cli/run.ts';
import { Broker } from '../sdk/index.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY } from '../test/fast-aws.ts';

const CALLS = Number(process.env.BENCH_CALLS ?? 300);
const INPUTS = Number(process.env.BENCH_INPUTS ?? 10_000);
const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
const round = (ms: number) => Math.round(ms * 100) / 100;

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-functions-bench-'));
const server = await startServer({
  port: 0,
  dataDir: join(dir, 'data'),
  seed: 5,
  scenario: simScenario(FAST_AWS_SCENARIO as never),
});
try {
  await server.broker.setPolicy(FAST_POLICY, 'bench');
  const broker = new Broker({ url: server.url, token: server.operatorToken as string });
  const { exports } = await deployModule(broker, 'test/fixtures/functions-app.ts', true);
  const square = exports.square as unknown as FunctionHandle<[number], number>;

  // Warm up: a container up and ready.
  const coldStart = performance.now();
  await square.remote(1);
  const firstCallMs = performance.now() - coldStart;
  const latencies: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    await square.remote(i);
    latencies.push(performance.now() - t0);
  }
  latencies.sort((a, b) => a - b);

  const t1 = performance.now();
  let sum = 0;
  for await (const y of square.map(Array.from({ length: INPUTS }, (_, i) => i))) sum += y;
  const mapMs = performance.now() - t1;
  const expected = Array.from({ length: INPUTS }, (_, i) => i * i).reduce((a, b) => a + b, 0);
  if (sum !== expected) throw new Error(`map summed ${sum}, expected ${expected}`);
  const containers = server.broker.runtime.containers().filter((c) => c.app === 'fixture').length;

  const result = {
    node: process.version,
    firstCallMs: Math.round(firstCallMs),
    remote: {
      calls: CALLS,
      p50Ms: round(quantile(latencies, 0.5)),
      p90Ms: round(quantile(latencies, 0.9)),
      p99Ms: round(quantile(latencies, 0.99)),
    },
    map: {
      inputs: INPUTS,
      wallMs: Math.round(mapMs),
      inputsPerSecond: Math.round((INPUTS * 1000) / mapMs),
      perInputOverheadMs: round(mapMs / INPUTS),
      containersAtEnd: containers,
    },
  };
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const file = new URL(
    `./results/functions-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
    import.meta.url,
  );
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  const table = new Table({
    head: ['measure', 'value'],
    style: { head: [], border: [] },
  });
  table.push(
    ['first call (placement, cold start, boot wait)', `${result.firstCallMs} ms`],
    [
      `warm remote p50 / p90 / p99 (${CALLS} calls)`,
      `${result.remote.p50Ms} / ${result.remote.p90Ms} / ${result.remote.p99Ms} ms`,
    ],
    [`map over ${INPUTS} inputs`, `${result.map.wallMs} ms, ${result.map.inputsPerSecond} inputs/s`],
    ['per-input overhead (map wall / inputs)', `${result.map.perInputOverheadMs} ms`],
    ['containers at the end', result.map.containersAtEnd],
  );
  console.log(table.toString());
  console.log(`written ${file.pathname}`);
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
