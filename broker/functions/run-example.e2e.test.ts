/**
 * The README's `gpubroker run examples/square.ts` (10,000 inputs in up to 100 containers) as real child processes
 * against a real broker in this process: it prints 333283335000, and a second run uploads nothing. The same command
 * on a small app runs in `npm test` (functions.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simScenario } from '../../providers/sim/scenario.ts';
import { runCli } from '../../test/cli-process.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY } from '../../test/fast-aws.ts';
import { type RunningServer, startServer } from '../server.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-run-example-'));
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({
    port: 0,
    dataDir: join(dir, 'data'),
    seed: 4,
    scenario: simScenario(FAST_AWS_SCENARIO as never),
  });
  await server.broker.setPolicy(FAST_POLICY, 'test');
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('gpubroker run, the README example', () => {
  it('runs examples/square.ts with gpubroker run: 333283335000, and a second run uploads nothing', async () => {
    const args = [
      'run',
      'examples/square.ts',
      '--url',
      server.url,
      '--token',
      server.operatorToken as string,
    ];
    const first = await runCli(args);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('333283335000');
    expect(first.stderr).toMatch(/\[ctr_[^\]]+\] squaring \d+/);
    expect(first.stderr).toContain('app demo: square');
    const second = await runCli(args);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('333283335000');
    expect(second.stderr).toContain('unchanged');
  }, 240_000);
});
