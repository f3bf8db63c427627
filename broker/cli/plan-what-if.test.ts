/**
 * `gpubroker plan --what-if FILE` and `gpubroker plans buffer-curve`, run in this process (test/cli-in-process.ts)
 * against a real broker started here: PGlite, simulated AWS with 8-GPU H100 nodes on a virtual clock, one tick run
 * by hand so that there is a latest plan to compare with.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { simScenario } from '../../providers/sim/scenario.ts';
import { runCliInProcess } from '../../test/cli-in-process.ts';
import type { CliRun } from '../../test/cli-process.ts';
import { type RunningServer, startServer } from '../server.ts';

const POLICY = {
  buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 8, fraction: 0 } } },
  spotMaxShare: 0,
  vendors: { allow: ['aws'], deny: [] },
  regions: { allow: ['us-east-1'], deny: [] },
};

let server: RunningServer;
let dir: string;
let operator: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gpubroker-what-if-'));
  server = await startServer({
    port: 0,
    clock: new VirtualClock(Date.UTC(2026, 10, 23)),
    seed: 7,
    schedule: false,
    agentHost: false,
    scenario: simScenario({
      seed: 7,
      vendors: ['aws'],
      spot: { replay: false },
      settings: { aws: { throttle: null, bootFailureRate: 0 } },
      stock: { onDemandPerZone: 16, rules: [{ match: { instanceType: 'p5.4xlarge' }, onDemandPerZone: 0 }] },
    }),
  });
  operator = (await server.broker.tokens.create('ops', 'operator')).token;
  await server.broker.setPolicy(POLICY, 'test');
  await server.broker.loop.tick();
  const file = (name: string, body: unknown) => writeFileSync(join(dir, name), JSON.stringify(body));
  file('bigger.json', { policy: { buffer: { perGpu: { H100: { gpus: 16 } } } } });
  file('bad-policy.json', { policy: { spotMaxShare: 2 } });
  writeFileSync(join(dir, 'not-json.json'), '{ "policy": ');
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

function cli(...args: string[]): Promise<CliRun> {
  return runCliInProcess(args, { cwd: dir, env: { GPUBROKER_URL: server.url, GPUBROKER_TOKEN: operator } });
}

/** A failure the caller can fix: exit 2 and one line on stderr. */
function expectOneLine(run: CliRun, pattern: RegExp): void {
  expect(run.code, run.stderr).toBe(2);
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(pattern);
}

describe('gpubroker plan --what-if', () => {
  it('prints the plan a policy change would make and how it differs from the latest plan, storing nothing', async () => {
    const before = JSON.parse((await cli('plans', 'list', '--json')).stdout).plans;
    const run = await cli('plan', '--what-if', 'bigger.json');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(
      /^what-if plan at \S+ \(policy version 1 with the change; not stored, nothing done\)/,
    );
    expect(run.stdout).toContain('would launch 1, terminate 0 instances');
    expect(run.stdout).toContain(`against the latest plan ${before[0].id} (policy version 1):`);
    expect(run.stdout).toMatch(/spend \$[\d.]+\/h → \$[\d.]+\/h \(\+\$[\d.]+\/h\)/);
    expect(run.stdout).toMatch(/p5\.48xlarge .*│ +1 │ +2 │ +\+1 │/);
    const json = JSON.parse((await cli('plan', '--what-if', 'bigger.json', '--json')).stdout);
    expect(json.diff.usdPerHour.change).toBeGreaterThan(0);
    expect(json.plan.id).toBe('what-if');
    expect(JSON.parse((await cli('plans', 'list', '--json')).stdout).plans).toEqual(before);
  });

  it('says no change when the file changes nothing', async () => {
    writeFileSync(join(dir, 'same.json'), '{}');
    const run = await cli('plan', '--what-if', 'same.json');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('spend $55.04/h → $55.04/h ($0.00/h)');
    expect(run.stdout).toContain('pools: no change');
  });

  it('refuses bad input in one line', async () => {
    expectOneLine(await cli('plan', '--what-if', 'bad-policy.json'), /policy\.spotMaxShare/);
    expectOneLine(await cli('plan', '--what-if', 'no-such-file.json'), /cannot read the what-if/);
    expectOneLine(await cli('plan', '--what-if', 'not-json.json'), /not-json\.json/);
    expectOneLine(
      await cli('plan', '--what-if', 'bigger.json', '--buffer', '4'),
      /--buffer: does not go with --what-if/,
    );
    expectOneLine(await cli('plan'), /--demand: is required/);
    const { token } = await server.broker.tokens.create('alice', 'tenant');
    const refused = await runCliInProcess(['plan', '--what-if', 'bigger.json'], {
      cwd: dir,
      env: { GPUBROKER_URL: server.url, GPUBROKER_TOKEN: token },
    });
    expectOneLine(refused, /operator/);
  });
});

describe('gpubroker plans buffer-curve', () => {
  it('prints cost and expected wait per buffer size; bad input is one line', async () => {
    const run = await cli('plans', 'buffer-curve', '--gpu', 'H100', '--max', '3');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^H100: forecast load 0 GPUs; .* waits one boot \(180 s\)/);
    expect(run.stdout).toMatch(/buffer GPUs │ held GPUs │ +\$\/h │ P\(wait\) │ expected wait/);
    // No buffer and no load: nothing held, so a request always waits a boot; one buffer GPU holds a node.
    expect(run.stdout).toMatch(/ 0 │ +0 │ +\$0\.00 │ +100\.0% │ +180\.0 s │/);
    expect(run.stdout).toMatch(/ 1 │ +8 │ +\$55\.04 │ +0\.0% │ +0\.0 s │/);
    const curve = JSON.parse(
      (await cli('plans', 'buffer-curve', '--gpu', 'H100', '--max', '3', '--json')).stdout,
    );
    expect(curve.points).toHaveLength(4);
    expectOneLine(await cli('plans', 'buffer-curve', '--gpu', 'H7'), /gpu: no offering sells "H7"/);
    expectOneLine(await cli('plans', 'buffer-curve'), /--gpu: is required/);
    expectOneLine(await cli('plans', 'buffer-curve', '--gpu', 'H100', '--max', '65'), /--max/);
  });
});
