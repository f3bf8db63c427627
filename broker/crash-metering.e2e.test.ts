/**
 * Metering across a crash, with real processes: a broker (`gpubroker serve`, simulated clouds inside, PGlite)
 * runs a container (a real child process) and is killed with SIGKILL. On restart the container's usage interval is
 * closed at its last checkpoint: billed time equals the time the container was observed running, within one
 * heartbeat, and nothing is billed twice or for the time the broker was down.
 *
 * And a ready lease lives through the crash (the simulated clouds keep their state in the data directory): it is
 * ready after the restart on the same GPUs, metered again before the new process answers, and what it lost is at
 * most the time the broker was down plus one heartbeat.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { usageIntervals } from '../runtime/meter/schema.ts';
import type { FunctionHandle } from '../sdk/app.ts';
import { Broker } from '../sdk/broker-client.ts';
import { deployModule } from '../sdk/cli/run.ts';
import { type CliProcess, freePort, spawnUntilAnswer, startCli, stopCli } from '../test/cli-process.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY } from '../test/fast-aws.ts';
import type { Lease } from './api/schemas.ts';
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

  it('keeps a ready lease ready across a crash, metered again before the new process answers', async () => {
    const scenarioFile = join(dir, 'lease-scenario.json');
    writeFileSync(scenarioFile, JSON.stringify(FAST_AWS_SCENARIO));
    const dataDir = join(dir, 'lease-data');
    const url = `http://127.0.0.1:${await freePort()}`;
    const args = [
      ...['serve', '--port', new URL(url).port, '--data-dir', dataDir, '--scenario', scenarioFile],
      ...['--meter-heartbeat', `${HEARTBEAT_MS}ms`],
    ];
    const first = await spawnUntilAnswer(args, { url });
    running.push(first);
    const token = readFileSync(join(dataDir, 'operator-token'), 'utf8').trim();
    const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      expect(response.status, `${method} ${path}`).toBeLessThan(300);
      return (await response.json()) as T;
    };
    await call('PUT', '/v1/policy', FAST_POLICY);
    let lease = await call<Lease>('POST', '/v1/leases', { gpu: 'H100', count: 8, placement: 'single-node' });
    for (let waited = 0; lease.status !== 'ready' && waited < 60_000; waited += 200) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      lease = await call<Lease>('GET', `/v1/leases/${lease.id}`);
    }
    expect(lease.status).toBe('ready');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const killedAt = Date.now();
    await stopCli(first, 'SIGKILL');
    const second = await spawnUntilAnswer(args, { url });
    running.push(second);
    const after = await call<Lease>('GET', `/v1/leases/${lease.id}`);
    expect(after.status).toBe('ready');
    // The same GPUs of the same instance (the machine's address shows only while its agent is connected).
    expect(after.allocations.map(withoutAddress)).toEqual(lease.allocations.map(withoutAddress));
    expect(await stopCli(second)).toBe(0);

    const database = await openDatabase({ dataDir });
    try {
      const intervals = (await database.db.select().from(usageIntervals))
        .filter((u) => u.subject === lease.id)
        .sort((a, b) => a.startMs - b.startMs);
      expect(intervals.map((u) => u.endedBy)).toEqual(['recovered', 'stopped']);
      const [crashed, resumed] = intervals as [(typeof intervals)[0], (typeof intervals)[0]];
      // Metered again before the new process answered; lost at most the time down plus one heartbeat (plus the
      // scheduling slack of this machine: a checkpoint's write in flight at the kill).
      expect(resumed.startMs).toBeLessThanOrEqual(second.answeredAtMs);
      expect(crashed.endMs).toBeLessThanOrEqual(killedAt);
      const lost = resumed.startMs - (crashed.endMs ?? 0);
      expect(lost).toBeLessThanOrEqual(second.answeredAtMs - killedAt + HEARTBEAT_MS + 1000);
    } finally {
      await database.close();
    }
  }, 180_000);
});

function withoutAddress<T extends { address?: string }>({ address: _address, ...allocation }: T) {
  return allocation;
}
