/**
 * Calls survive the broker: a real `gpubroker serve` is SIGKILLed while a batch of calls is half done, started
 * again on the same data directory, and every call the client was answered 202 for finishes, once, with its result;
 * those finished before the crash answer as before. Then the same across a clean stop (SIGTERM).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deployModule } from '../../sdk/cli/run.ts';
import { Broker } from '../../sdk/index.ts';
import { type AnsweringProcess, freePort, spawnUntilAnswer, stopCli } from '../../test/cli-process.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY } from '../../test/fast-aws.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-durable-'));
const running = new Set<AnsweringProcess>();
afterAll(async () => {
  for (const process of running) await stopCli(process, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface CallBody {
  id: string;
  status: string;
  value?: { x: number; square: number };
  attempts: number;
}

describe('calls across a broker crash', () => {
  it('finish, each with its result, after a SIGKILL and after a clean stop', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const dataDir = join(dir, 'data');
    const scenarioFile = join(dir, 'scenario.json');
    writeFileSync(scenarioFile, JSON.stringify(FAST_AWS_SCENARIO));
    const args = ['serve', '--port', new URL(url).port, '--data-dir', dataDir, '--scenario', scenarioFile];
    const start = async () => {
      const process = await spawnUntilAnswer(args, { url });
      running.add(process);
      return process;
    };
    let server = await start();
    const token = readFileSync(join(dataDir, 'operator-token'), 'utf8').trim();
    const broker = new Broker({ url, token });
    await broker.call('PUT', '/v1/policy', FAST_POLICY);
    await deployModule(broker, 'test/fixtures/durable-app.ts', false);
    const submit = async (from: number, count: number) =>
      (
        await broker.call<{ callIds: string[] }>('POST', '/v1/apps/durable/functions/work/calls', {
          inputs: Array.from({ length: count }, (_, i) => [from + i]),
        })
      ).callIds;
    const get = (id: string, waitMs = 0) => broker.call<CallBody>('GET', `/v1/calls/${id}?waitMs=${waitMs}`);

    // Warm: the first call waits for a container.
    const [first] = await submit(1_000, 1);
    expect((await get(first as string, 60_000)).status).toBe('succeeded');

    for (const stop of ['SIGKILL', 'SIGTERM'] as const) {
      const ids = await submit(0, 60);
      // Some done, most not.
      for (;;) {
        const done = (
          await broker.call<{ calls: CallBody[] }>('POST', '/v1/calls/wait', { callIds: ids, waitMs: 5_000 })
        ).calls;
        if (done.length >= 4) break;
      }
      const before = new Map<string, CallBody>();
      for (const id of ids) {
        const call = await get(id);
        if (call.status === 'succeeded') before.set(id, call);
      }
      expect(before.size, stop).toBeLessThan(ids.length);
      await stopCli(server, stop);
      running.delete(server);
      server = await start();
      for (const [i, id] of ids.entries()) {
        let call = await get(id, 60_000);
        while (call.status === 'pending' || call.status === 'running') call = await get(id, 60_000);
        expect(call.status, `${stop}: call ${i}`).toBe('succeeded');
        expect(call.value, `${stop}: call ${i}`).toEqual({ x: i, square: i * i });
        // Finished before the crash: the same answer.
        if (before.has(id)) expect(call, `${stop}: call ${i}`).toEqual(before.get(id));
      }
    }
    await stopCli(server, 'SIGTERM');
    running.delete(server);
  }, 240_000);
});
