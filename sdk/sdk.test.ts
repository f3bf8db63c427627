/**
 * The SDK against a real broker on the real clock: real HTTP on 127.0.0.1, PGlite in a temporary directory,
 * simulated AWS with a 300 ms boot, a loop ticking every second.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../broker/server.ts';
import { simScenario } from '../providers/sim/scenario.ts';
import { quietAwsScenario } from '../test/fast-aws.ts';
import { Broker, BrokerApiError, type Lease, LeaseFailedError } from './index.ts';

let server: RunningServer;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gpubroker-sdk-'));
  server = await startServer({
    port: 0,
    dataDir: dir,
    scenario: simScenario({
      ...quietAwsScenario(1, 300),
      stock: {
        rules: [
          { match: { instanceType: 'p5.4xlarge' }, onDemandPerZone: 0 },
          { match: { gpu: 'A100-80GB' }, onDemandPerZone: 0 },
        ],
      },
    }),
  });
  await server.broker.setPolicy(
    {
      planSchedule: '* * * * * *',
      spotMaxShare: 0,
      vendors: { allow: ['aws'], deny: [] },
      regions: { allow: ['us-east-1'], deny: [] },
    },
    'test',
  );
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('SDK', () => {
  it('requests GPUs, waits until they are ready, and releases them at the end of the block', async () => {
    const broker = new Broker({ url: server.url, token: server.operatorToken });
    const seen: Lease['status'][] = [];
    let id: string;
    {
      await using lease = await broker.gpus.request(
        { gpu: 'H100', count: 8, placement: 'single-node' },
        { timeoutMs: 30_000, pollMs: 100, onProgress: (l) => seen.push(l.status) },
      );
      id = lease.id;
      expect(lease.status).toBe('ready');
      expect(lease.allocations[0]?.gpuIndices).toHaveLength(8);
      expect(seen[0]).toBe('pending');
    }
    expect((await broker.leases.get(id)).status).toBe('released');
  });

  it('rejects a lease that can never be met, and bad input with the field', async () => {
    const broker = new Broker({ url: server.url, token: server.operatorToken });
    const failed = await broker.gpus
      .request({ gpu: 'H100', count: 16, placement: 'single-node' })
      .catch((e) => e);
    expect(failed).toBeInstanceOf(LeaseFailedError);
    expect((failed as LeaseFailedError).lease.reason).toMatch(/on one node/);
    const bad = await broker.gpus.request({ gpu: 'H100', count: 0 }).catch((e) => e);
    expect(bad).toBeInstanceOf(BrokerApiError);
    expect((bad as BrokerApiError).field).toBe('count');
    const noToken = await new Broker({ url: server.url, token: 'gpb_nope' }).leases.list().catch((e) => e);
    expect((noToken as BrokerApiError).status).toBe(401);
  });

  it('waits for a pending lease with one long poll that answers when it turns ready, not at the end of the wait', async () => {
    const broker = new Broker({ url: server.url, token: server.operatorToken });
    // The first takes what is free now, so the second waits for an instance to be bought and to boot.
    const first = await broker.gpus.request(
      { gpu: 'H100', count: 8, placement: 'single-node' },
      { timeoutMs: 30_000 },
    );
    const lease = await broker.leases.create({ gpu: 'H100', count: 8, placement: 'single-node' });
    expect(lease.status).toBe('pending');
    const asked: number[] = [];
    let answer = lease;
    while (answer.status === 'pending') {
      const started = performance.now();
      answer = await broker.leases.get(lease.id, { waitMs: 60_000 });
      asked.push(performance.now() - started);
    }
    expect(answer.status).toBe('ready');
    // Each long poll ends when the lease changes (well before 60 s); a handful of asks, not one per 500 ms.
    expect(asked.length).toBeLessThanOrEqual(2);
    expect(Math.max(...asked)).toBeLessThan(30_000);
    await broker.leases.release(lease.id);
    await first.release();
  });

  it('gives up when aborted, releasing the pending lease', async () => {
    const broker = new Broker({ url: server.url, token: server.operatorToken });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('user gave up')), 400);
    const error = await broker.gpus
      .request({ gpu: 'A100-80GB', count: 1 }, { signal: controller.signal, pollMs: 50 })
      .catch((e) => e);
    expect(error).toBeInstanceOf(LeaseFailedError);
    expect((error as LeaseFailedError).lease.status).toBe('released');
  });
});
