/**
 * `gpubroker simulate`: runs a workload under one or more policies on a virtual clock, through the real broker,
 * runtime and meter against the simulated clouds, and prints what each policy cost and how long requests waited.
 */
import Table from 'cli-table3';
import type { Command } from 'commander';
import { parseIntegerIn, parsePositive } from '../lib/cli-args.ts';
import { loadSimScenario } from '../providers/sim/scenario.ts';
import { parseFaults } from './engine/faults.ts';
import { PRESETS } from './policies.ts';
import { terminalProgress } from './progress.ts';
import { writeReport } from './report/write-report.ts';
import type { PolicyResult } from './results.ts';
import { DEFAULT_POLICIES, simulate } from './simulate.ts';
import { DEFAULT_THROUGHPUT } from './workloads/azure-llm.ts';
import { WORKLOAD_NAMES } from './workloads/resolve-workload.ts';

interface SimulateFlags {
  workload: string;
  hours?: string;
  scale: string;
  speed: string;
  policy?: string[];
  sweep?: string[];
  keepGoing?: boolean;
  faults?: string;
  workers?: string;
  seed: string;
  out?: string;
  json?: boolean;
  gpu?: string;
  scenario?: string;
  throughput?: string;
  prefillThroughput?: string;
}

export function registerSimulateCommand(program: Command): void {
  program
    .command('simulate')
    .description('simulate a workload under capacity policies on a virtual clock and compare cost and waits')
    .requiredOption('--workload <name|file>', `${WORKLOAD_NAMES.join(' | ')} | a CSV file`)
    .option('--hours <n>', 'simulated hours (default: the whole trace; synthetic workloads: 24)')
    .option('--scale <x>', 'replay ×X: overlay shifted copies of the trace', '1')
    .option('--speed <x>', 'arrival times divided by X (2: twice as fast)', '1')
    .option(
      '--policy <file|name...>',
      `policy JSON files or built-ins (${Object.keys(PRESETS).join(', ')}); default ${DEFAULT_POLICIES.join(', ')}`,
    )
    .option(
      '--sweep <key=values...>',
      'run the grid of these values over the policies, e.g. buffer=0,10,20 spotMaxShare=0.2,0.5 (buffer: percent of demand; any policy field by its path; function.<option>)',
    )
    .option('--seed <n>', 'seed of every random choice', '1')
    .option(
      '--workers <n>',
      'policies run at once, each on a thread of its own (default: the cores; 1: one by one)',
    )
    .option(
      '--faults <spec>',
      'inject faults drawn from the seed: outages=N (provider outages), crashes=P (container crash probability), storms=N (spot preemption storms), e.g. outages=3,crashes=0.02,storms=1',
    )
    .option(
      '--keep-going',
      'count invariant violations and run on (default: the first stops the run, exit 1)',
    )
    .option('--out <dir>', 'write report.html and results.json there')
    .option('--json', 'print one JSON object per policy (one per line), without the time series')
    .option('--gpu <type>', "GPU type the workload asks for (default: the workload's)")
    .option('--scenario <file>', 'simulated clouds scenario (JSON or TS), as for `serve --scenario`')
    .option(
      '--throughput <tokens/s>',
      `LLM traces: generated tokens per second (default ${DEFAULT_THROUGHPUT.tokensPerSecond})`,
    )
    .option(
      '--prefill-throughput <tokens/s>',
      `LLM traces: context tokens per second (default ${DEFAULT_THROUGHPUT.prefillTokensPerSecond})`,
    )
    .action(async (flags: SimulateFlags) => {
      const progress = terminalProgress();
      let results: Awaited<ReturnType<typeof simulate>>;
      try {
        results = await simulate({
          workload: flags.workload,
          seed: parseIntegerIn('--seed', flags.seed, 0, 4_294_967_295),
          scale: parsePositive('--scale', flags.scale, 10_000),
          speed: parsePositive('--speed', flags.speed, 1_000),
          ...(flags.hours !== undefined ? { hours: parsePositive('--hours', flags.hours, 87_600) } : {}),
          ...(flags.policy ? { policies: flags.policy } : {}),
          ...(flags.sweep ? { sweep: flags.sweep } : {}),
          ...(flags.keepGoing ? { keepGoing: true } : {}),
          ...(flags.faults !== undefined ? { faults: parseFaults(flags.faults) } : {}),
          workers: flags.workers !== undefined ? parseIntegerIn('--workers', flags.workers, 1, 64) : 'auto',
          ...(flags.gpu ? { gpu: flags.gpu } : {}),
          ...(flags.scenario ? { scenario: await loadSimScenario(flags.scenario) } : {}),
          throughput: {
            tokensPerSecond: flags.throughput
              ? parsePositive('--throughput', flags.throughput, 1_000_000)
              : DEFAULT_THROUGHPUT.tokensPerSecond,
            prefillTokensPerSecond: flags.prefillThroughput
              ? parsePositive('--prefill-throughput', flags.prefillThroughput, 10_000_000)
              : DEFAULT_THROUGHPUT.prefillTokensPerSecond,
          },
          onProgress: (p) => progress.update(p),
          // Without --keep-going the first violation ends the run with one line saying where (and how to replay it).
          ...(flags.keepGoing
            ? {
                onViolation: (policy: string, name: string, message: string) =>
                  process.stderr.write(`gpubroker: ${policy}: invariant ${name} violated: ${message}\n`),
              }
            : {}),
        });
      } finally {
        progress.stop();
      }
      if (flags.json)
        for (const { series: _series, waitCdf: _cdf, ...summary } of results.results)
          process.stdout.write(`${JSON.stringify(summary)}\n`);
      else process.stdout.write(renderResults(results.results));
      if (flags.out) {
        const files = await writeReport(flags.out, results);
        process.stderr.write(`written ${files.html} and ${files.json}\n`);
      }
    });
}

const usd = (v: number) =>
  `$${v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
const seconds = (ms: number) => (ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 1000).toFixed(0)} s`);

/** The comparison table: one row per policy. */
export function renderResults(results: readonly PolicyResult[]): string {
  const table = new Table({
    head: [
      'policy',
      'cost',
      'GPU-h held',
      'GPU-h used',
      'util.',
      'wait p50',
      'p95',
      'p99',
      'cold starts',
      'preempted',
      'unmet GPU-h',
      'violations',
      'frontier',
    ],
    style: { head: [], border: [], compact: true },
  });
  for (const r of results)
    table.push([
      r.policy,
      usd(r.costUsd),
      r.gpuHoursProvisioned.toFixed(1),
      r.gpuHoursUsed.toFixed(1),
      `${(r.utilization * 100).toFixed(1)}%`,
      seconds(r.waitMs.p50),
      seconds(r.waitMs.p95),
      `${seconds(r.waitMs.p99)}${r.caveat ? '*' : ''}`,
      r.coldStarts,
      r.preemptions,
      r.unmetGpuHours.toFixed(2),
      Object.values(r.invariants).reduce((n, c) => n + c.violations, 0),
      r.paretoFrontier ? '★' : '',
    ]);
  const first = results[0];
  const footer = first
    ? `${first.workload}, seed ${first.seed}: ${first.requests.toLocaleString('en-US')} requests; wall ${results
        .map((r) => `${r.policy} ${(r.wallMs / 1000).toFixed(1)} s`)
        .join(', ')}`
    : 'no policy ran';
  const frontier = results.filter((r) => r.paretoFrontier).map((r) => r.policy);
  const few = results.filter((r) => r.caveat);
  const notes = [
    ...(results.length > 1 ? [`★ Pareto frontier (cost against p99 wait): ${frontier.join(', ')}`] : []),
    ...(few.length > 0
      ? [
          `* wait percentiles from fewer than 1,000 waits (${few.map((r) => `${r.policy}: ${r.waitSamples}`).join(', ')}): differences may be noise`,
        ]
      : []),
  ];
  return `${table.toString()}\n${footer}\n${notes.map((n) => `${n}\n`).join('')}`;
}
