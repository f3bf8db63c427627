/**
 * `npm run fuzz`: the API fuzz (engine.ts) against a broker in this process (in-memory PGlite, simulated clouds
 * whose instances take an hour to boot, so that no container process starts during the run).
 *
 *   npm run fuzz                                  10,000 requests, a random seed (printed)
 *   npm run fuzz -- --requests 50000 --seed 42    or FUZZ_REQUESTS / FUZZ_SEED
 *   FUZZ_BOOT_MS=5000 npm run fuzz                instances boot in 5 s: leases become ready, containers start
 *
 * Prints the figures and the first failures with their reproduction, writes bench/results/fuzz-<timestamp>.json,
 * and exits 1 when any oracle failed (a 5xx, an accepted invalid write, a state change on an error, a malformed
 * problem, a tenant isolation breach, an answer off the document, or no answer).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Table from 'cli-table3';
import { type FuzzReport, runFuzz } from './engine.ts';
import { startFuzzServer } from './fuzz-server.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string' },
    seed: { type: 'string' },
    'timeout-ms': { type: 'string' },
  },
});
const requests = Number(values.requests ?? process.env.FUZZ_REQUESTS ?? 10_000);
const seed = Number(values.seed ?? process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const bootMs = Number(process.env.FUZZ_BOOT_MS ?? 3_600_000);
if (!Number.isSafeInteger(requests) || requests < 1) throw new Error('--requests: a positive integer');
if (!Number.isSafeInteger(seed)) throw new Error('--seed: an integer');
console.log(
  `api fuzz: ${requests} requests, seed ${seed} (replay: npm run fuzz -- --seed ${seed} --requests ${requests})`,
);

const server = await startFuzzServer(seed, bootMs);
let report: FuzzReport;
try {
  report = await runFuzz(server, {
    seed,
    requests,
    ...(values['timeout-ms'] ? { timeoutMs: Number(values['timeout-ms']) } : {}),
    log: (line) => console.log(`  ${line}`),
  });
} finally {
  await server.close();
}

mkdirSync(new URL('../../bench/results/', import.meta.url), { recursive: true });
const file = new URL(
  `../../bench/results/fuzz-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
  import.meta.url,
);
writeFileSync(file, `${JSON.stringify({ node: process.version, bootMs, ...report }, null, 2)}\n`);

const table = new Table({ head: ['measure', 'value'], style: { head: [], border: [] } });
table.push(
  ['seed', report.seed],
  ['requests sent (+ setup)', `${report.requests} (+ ${report.setupRequests})`],
  ['by transport', JSON.stringify(report.transports)],
  ['by expectation', JSON.stringify(report.expectations)],
  ['status classes', JSON.stringify(report.statusClasses)],
  ['5xx', report.serverErrors],
  ['accepted invalid writes', report.acceptedInvalidWrites],
  [`state changes on errors (${report.writesChecked} writes checked)`, report.stateChangesOnError],
  ['malformed problems', report.problemShapeViolations],
  ['tenant isolation breaches', report.isolationBreaches],
  ['answers off the document', report.responseContractViolations],
  ['no answer (timeouts, resets)', report.noAnswer],
  ['invalid reads answered 2xx (info)', report.acceptedInvalidReads],
  ['closed without an answer (info)', report.closedWithoutAnswer],
  [
    'latency p50 / p90 / p99 / max',
    `${report.latencyMs.p50} / ${report.latencyMs.p90} / ${report.latencyMs.p99} / ${report.latencyMs.max} ms`,
  ],
  ['duration', `${(report.durationMs / 1000).toFixed(1)} s`],
);
console.log(table.toString());
const ops = new Table({
  head: ['operation', 'requests', 'valid (2xx)', 'invalid', 'statuses', 'p50 / p99 ms'],
  style: { head: [], border: [] },
});
for (const [op, s] of Object.entries(report.operations))
  ops.push([
    op,
    s.requests,
    `${s.valid} (${s.validAccepted})`,
    s.invalid,
    JSON.stringify(s.byStatus),
    `${s.p50Ms} / ${s.p99Ms}`,
  ]);
console.log(ops.toString());
for (const f of report.failures.slice(0, 10)) {
  console.log(`\n[${f.kind}] request #${f.index} of seed ${f.seed}: ${f.detail}`);
  console.log(
    `  ${f.request.method} ${f.request.target} as ${f.request.principal} (${f.request.expect}: ${f.request.why})`,
  );
  console.log(`  headers ${JSON.stringify(f.request.headers)}`);
  if (f.request.body !== undefined)
    console.log(`  body (${f.request.bodyLength}) ${JSON.stringify(f.request.body.slice(0, 400))}`);
  console.log(`  answer ${f.status ?? '-'} ${f.answer ?? ''}`);
}
console.log(`\nwritten ${file.pathname}`);
process.exit(report.ok ? 0 : 1);
