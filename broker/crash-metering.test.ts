/**
 * Metering across a crash, with real processes: a broker (`gpubroker serve`, simulated clouds inside, PGlite)
 * runs a container (a real child process) and is killed with SIGKILL. On restart the container's usage interval is
 * closed at its last checkpoint: billed time equals the time the container was observed running, within one
 * heartbeat, and nothing is billed twice or for the time the broker was down.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { usageIntervals } from '../runtime/meter/schema.ts';
import type { FunctionHandle } from '../sdk/app.ts';
import { Broker } from '../sdk/broker-client.ts';
import { type CliProcess, startCli, stopCli } from '../test/cli-process.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY } from '../test/fast-aws.ts';
import { deployModule } from './cli/run.ts';
import { openDatabase } from './db/open-database.ts';

const HEARTBEAT_MS = 500;
const dir = mkdtempSync(join(tmpdir(), 'gpubroker-crash-meter-'));
const running: CliProcess[] = [];
afterAll(async () => {
  for (const process of running) await stopCli(process, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('metering across a crash', () => {
  it('closes a killed broker’s container interval at its last checkpoint, once', async () => {
    const scenarioFile = join(dir, 'scenario.json');
    writeFileSync(scenarioFile, JSON.stringify(FAST_AWS_SCENARIO));
    const dataDir = join(dir, 'data');
    const args = [
      'serve',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--scenario',
      scenarioFile,
      '--meter-heartbeat',
      `${HEARTBEAT_MS}ms`,
    ];
    const first = await startCli(args);
    running.push(first);
    const token = readFileSync(join(dataDir, 'operator-token'), 'utf8').trim();
    const broker = new Broker({ url: first.url, token });
    await broker.call('PUT', '/v1/policy', FAST_POLICY);
    const { exports } = await deployModule(broker, 'test/fixtures/functions-app.ts', false);
    const square = exports.square as unknown as FunctionHandle<[number], number>;
    expect(await square.remote(6)).toBe(36);
    // The container stays up (idle, inside its scale-down window) while the broker dies.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const killedAfter = Date.now();
    await stopCli(first, 'SIGKILL');
    const killedBefore = Date.now();

    const second = await startCli(args);
    running.push(second);
    const code = await stopCli(second);
    expect(code, second.output()).toBe(0);

    const database = await openDatabase({ dataDir });
    try {
      const containers = (await database.db.select().from(usageIntervals)).filter(
        (u) => u.kind === 'container',
      );
      expect(containers).toHaveLength(1);
      const [interval] = containers as [(typeof containers)[0]];
      expect(interval.subject).toBe('fixture/square');
      expect(interval.endedBy).toBe('recovered');
      const billedMs = (interval.endMs ?? 0) - interval.startMs;
      const observedMs = killedAfter - interval.startMs;
      // Never more than was observed; less by at most one heartbeat (plus the scheduling slack of this machine).
      expect(interval.endMs).toBeLessThanOrEqual(killedBefore);
      expect(billedMs).toBeGreaterThanOrEqual(observedMs - HEARTBEAT_MS - 1000);
    } finally {
      await database.close();
    }
    // Two broker processes start one after the other: generous for a machine busy with other work.
  }, 180_000);
});
