import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import loadHighs from 'highs';
import { describe, expect, it } from 'vitest';
import { runCliInProcess } from '../test/cli-in-process.ts';
import { runCli } from '../test/cli-process.ts';

const gpubroker = (...args: string[]) => runCliInProcess(args);

describe('gpubroker plan', () => {
  it('prints a JSON plan whose objective is the exported LP model optimum', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpubroker-'));
    const lpFile = join(dir, 'model.lp');
    const { code, stdout } = await gpubroker(
      'plan',
      '--demand',
      'H100:64@us,H100:16x8@us,A100-80GB:24@eu',
      '--buffer',
      '10%',
      '--spot-max',
      '40%',
      '--gap',
      '0%',
      '--export',
      lpFile,
      '--json',
    );
    expect(code).toBe(0);
    const plan = JSON.parse(stdout);
    for (const key of [
      'status',
      'backend',
      'objective',
      'bound',
      'gap',
      'solveMs',
      'unmetGpus',
      'usdPerHour',
      'pools',
    ])
      expect(plan).toHaveProperty(key);
    expect(plan.status).toBe('optimal');
    expect(Object.keys(plan.pools[0]).sort()).toEqual(
      expect.arrayContaining([
        'vendor',
        'region',
        'instanceType',
        'gpu',
        'gpusPerInstance',
        'capacityType',
        'count',
        'usdPerHour',
      ]),
    );
    const gpus = plan.pools
      .filter((p: { gpu: string }) => p.gpu === 'H100')
      .reduce(
        (a: number, p: { count: number; gpusPerInstance: number }) => a + p.count * p.gpusPerInstance,
        0,
      );
    expect(gpus).toBeGreaterThanOrEqual(Math.ceil((64 + 16) * 1.1));

    const lp = readFileSync(lpFile, 'utf8');
    expect(lp).toMatch(/cover_H100_us_t1:/);
    expect(lp).toMatch(/gang8_H100_us_t1:/);
    expect(lp).toMatch(/spot_H100_us_t1:/);
    const highs = await loadHighs();
    const solved = highs.solve(lp, { mip_rel_gap: 0 });
    expect(solved.Status).toBe('Optimal');
    expect(solved.ObjectiveValue).toBeCloseTo(plan.objective, 4);
  });

  it('prints the pools, the cost and the explanation for people', async () => {
    const { code, stdout } = await gpubroker('plan', '--demand', 'L4:40@asia', '--budget', '20');
    expect(code).toBe(0);
    expect(stdout).toMatch(/g2-standard|g6/);
    expect(stdout).toMatch(/unmet GPUs \d+/);
    expect(stdout).toMatch(/why:/);
  });

  it.each([
    [['plan', '--demand', 'H10:8@us'], /unknown GPU type "H10"; did you mean .*H100/],
    [['plan', '--demand', 'H100:8@mars'], /unknown region group "mars"/],
    [['plan', '--demand', 'H100-8-us'], /is not GPU:COUNT\[xGANG\]@GROUP/],
    [['plan', '--demand', 'H100:12x8@us'], /not a whole number of 8-GPU gangs/],
    [['plan', '--demand', 'H100:8@us', '--budget', '-3'], /--budget/],
    [['plan', '--demand', 'H100:8@us', '--spot-max', '140%'], /--spot-max/],
    [['plan', '--demand', 'H100:8@us', '--horizon', '0'], /--horizon/],
    [['plan', '--demand', 'H100:8@us', '--backend', 'cplex'], /--backend/],
    [['plan', '--demand', 'H100:99999999@us'], /more than/],
  ])('rejects %j with one line and exit status 2', async (args, message) => {
    const { code, stderr, stdout } = await gpubroker(...args);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(message);
  });
});

describe('gpubroker plan (child process)', () => {
  it('exits with status 2 and one line on stderr for bad input, as a real process', async () => {
    const { code, stderr, stdout } = await runCli(['plan', '--demand', 'H10:8@us']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/unknown GPU type "H10"; did you mean .*H100/);
  });
});
