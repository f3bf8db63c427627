import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCliInProcess } from '../test/cli-in-process.ts';
import { runCli } from '../test/cli-process.ts';
import type { SimulationResults } from './results.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-simulate-cli-'));

const gpubroker = (...args: string[]) => runCliInProcess(args);

describe('gpubroker simulate', () => {
  it('prints one JSON object per policy and writes the report with --out', async () => {
    const workload = join(dir, 'calls.csv');
    writeFileSync(
      workload,
      `arrival_seconds,duration_seconds\n${Array.from({ length: 40 }, (_, i) => `${i * 15},${20 + (i % 7) * 5}`).join('\n')}\n`,
    );
    const policy = join(dir, 'lean.json');
    writeFileSync(policy, JSON.stringify({ spotMaxShare: 0 }));
    const out = join(dir, 'report');
    const { code, stdout, stderr } = await gpubroker(
      'simulate',
      '--workload',
      workload,
      '--hours',
      '0.25',
      '--policy',
      'buffer-0',
      policy,
      '--seed',
      '3',
      '--json',
      '--out',
      out,
    );
    expect(stderr).not.toMatch(/violated/);
    expect(code).toBe(0);
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines.map((l) => l.policy)).toEqual(['buffer-0', 'lean']);
    for (const l of lines) {
      for (const key of [
        'seed',
        'workload',
        'policy',
        'costUsd',
        'gpuHoursProvisioned',
        'gpuHoursUsed',
        'utilization',
        'waitMs',
        'coldStarts',
        'preemptions',
        'unmetGpuHours',
        'wallMs',
      ])
        expect(l).toHaveProperty(key);
      expect(l).toMatchObject({ seed: 3, workload: 'calls', requests: 40 });
      expect(l.waitMs.p99).toBeGreaterThanOrEqual(l.waitMs.p50);
    }
    expect(existsSync(join(out, 'report.html'))).toBe(true);
    const written = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as SimulationResults;
    expect(written.results.map((r) => r.policy)).toEqual(['buffer-0', 'lean']);
    expect(written.results[0]?.series.tMs.length).toBe(4);
  });

  it('sweeps a grid, marks the Pareto frontier and flags percentiles from few waits', async () => {
    const workload = join(dir, 'sweep.csv');
    writeFileSync(
      workload,
      `arrival_seconds,duration_seconds\n${Array.from({ length: 30 }, (_, i) => `${i * 20},${30 + (i % 5) * 10}`).join('\n')}\n`,
    );
    const { code, stdout, stderr } = await gpubroker(
      'simulate',
      '--workload',
      workload,
      '--hours',
      '0.2',
      '--sweep',
      'buffer=0,50',
      'bufferGpus=0,8',
    );
    expect(stderr).not.toMatch(/violated/);
    expect(code).toBe(0);
    for (const name of [
      'buffer=0 bufferGpus=0',
      'buffer=0 bufferGpus=8',
      'buffer=50 bufferGpus=0',
      'buffer=50 bufferGpus=8',
    ])
      expect(stdout).toContain(name);
    expect(stdout).toMatch(/★ Pareto frontier \(cost against p99 wait\): \S/);
    // 30 waits: every policy's percentiles carry the caveat.
    expect(stdout).toMatch(/\* wait percentiles from fewer than 1,000 waits \(buffer=0 bufferGpus=0: 30,/);
    const json = await gpubroker(
      'simulate',
      '--workload',
      workload,
      '--hours',
      '0.2',
      '--sweep',
      'buffer=0,50',
      '--json',
    );
    const lines = json.stdout
      .trim()
      .split('\n')
      .map(
        (line) =>
          JSON.parse(line) as {
            policy: string;
            paretoFrontier: boolean;
            waitSamples: number;
            caveat?: string;
          },
      );
    expect(lines.map((l) => l.policy)).toEqual(['buffer=0', 'buffer=50']);
    expect(lines.some((l) => l.paretoFrontier)).toBe(true);
    for (const l of lines) {
      expect(l.waitSamples).toBe(30);
      expect(l.caveat).toMatch(/from 30 waits/);
    }
    const bad = await gpubroker('simulate', '--workload', workload, '--sweep', 'spotMaxShare=3');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--sweep: spotMaxShare=3: spotMaxShare/);
  });

  it('injects faults from the seed: the same run twice, every invariant held, inputs retried rather than lost', async () => {
    const workload = join(dir, 'faults.csv');
    writeFileSync(
      workload,
      `arrival_seconds,duration_seconds\n${Array.from({ length: 60 }, (_, i) => `${i * 30},${40 + (i % 4) * 20}`).join('\n')}\n`,
    );
    const run = async () => {
      const { code, stdout, stderr } = await gpubroker(
        'simulate',
        '--workload',
        workload,
        '--hours',
        '0.6',
        '--policy',
        'spot-50',
        '--faults',
        'outages=2,crashes=0.6,storms=1',
        '--json',
      );
      expect(stderr).not.toMatch(/violated/);
      expect(code).toBe(0);
      return JSON.parse(stdout.trim()) as {
        coldStarts: number;
        waitSamples: number;
        invariants: Record<string, { checks: number; violations: number }>;
      };
    };
    const [first, second] = [await run(), await run()];
    expect(second).toMatchObject({ coldStarts: first.coldStarts, waitSamples: first.waitSamples });
    for (const [name, counts] of Object.entries(first.invariants)) expect(counts.violations, name).toBe(0);
    expect(first.invariants.noInputLost?.checks).toBeGreaterThan(0);
    const quiet = await gpubroker(
      'simulate',
      '--workload',
      workload,
      '--hours',
      '0.6',
      '--policy',
      'spot-50',
      '--json',
    );
    // Crashed containers are replaced: more cold starts than without faults.
    expect(first.coldStarts).toBeGreaterThan(
      (JSON.parse(quiet.stdout.trim()) as { coldStarts: number }).coldStarts,
    );
    const bad = await gpubroker('simulate', '--workload', workload, '--faults', 'crashes=7');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--faults: crashes is a probability/);
  });

  it('gives the same results with the policies on worker threads as one after the other', async () => {
    const workload = join(dir, 'threads.csv');
    writeFileSync(
      workload,
      `arrival_seconds,duration_seconds\n${Array.from({ length: 30 }, (_, i) => `${i * 25},${30 + (i % 3) * 15}`).join('\n')}\n`,
    );
    const run = async (workers: string) => {
      const { code, stdout, stderr } = await gpubroker(
        'simulate',
        '--workload',
        workload,
        '--hours',
        '0.3',
        '--policy',
        'buffer-0',
        'buffer-20',
        '--workers',
        workers,
        '--json',
      );
      expect(stderr).not.toMatch(/violated/);
      expect(code).toBe(0);
      return stdout
        .trim()
        .split('\n')
        .map((line) => {
          const { wallMs: _wall, wallShare: _share, ...rest } = JSON.parse(line) as Record<string, unknown>;
          return rest;
        });
    };
    const [threads, sequential] = [await run('2'), await run('1')];
    expect(threads.map((r) => r.policy)).toEqual(['buffer-0', 'buffer-20']);
    expect(threads).toEqual(sequential);
  });

  it('exits 2 on an unknown workload, naming the flag', async () => {
    const { code, stderr } = await gpubroker('simulate', '--workload', 'alibaba-xx');
    expect(code).toBe(2);
    expect(stderr).toMatch(/--workload: "alibaba-xx" is neither a workload/);
  });

  it('exits 2 on a malformed CSV row, naming the file and the line', async () => {
    const workload = join(dir, 'broken.csv');
    writeFileSync(workload, 'arrival_seconds,duration_seconds\n0,10\n5,ten\n');
    const { code, stderr } = await gpubroker('simulate', '--workload', workload);
    expect(code).toBe(2);
    expect(stderr).toContain(`${workload}, line 3, field duration_seconds`);
  });

  it('exits 2 on an invalid policy before simulating anything, naming the field', async () => {
    const policy = join(dir, 'bad.json');
    writeFileSync(policy, JSON.stringify({ spotMaxShare: 2 }));
    const { code, stderr } = await gpubroker(
      'simulate',
      '--workload',
      'alibaba-sd',
      '--policy',
      'buffer-10',
      policy,
    );
    expect(code).toBe(2);
    expect(stderr).toMatch(/bad\.json, field policy\.spotMaxShare/);
  });
});

describe('gpubroker simulate (child process)', () => {
  it('exits 2 on an unknown workload with one line on stderr naming the flag, as a real process', async () => {
    const { code, stdout, stderr } = await runCli(['simulate', '--workload', 'alibaba-xx']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/--workload: "alibaba-xx" is neither a workload/);
  });
});
