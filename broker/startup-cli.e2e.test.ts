/**
 * The start-up failures as a user meets them, through the real CLI in child processes: one line on stderr naming
 * the setting, exit status 1, no stack trace. (startup.test.ts covers each failure in process.)
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli, stopCli } from '../test/cli-process.ts';
import { startServer } from './server.ts';

let root: string;
let sound: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'gpubroker-startup-cli-'));
  sound = join(root, 'sound');
  const server = await startServer({ port: 0, dataDir: sound, schedule: false });
  await server.close();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function copyOfSound(name: string): string {
  const dir = join(root, name);
  cpSync(sound, dir, { recursive: true });
  return dir;
}

describe('gpubroker serve and db check, as a user runs them', () => {
  it('print one line and exit 1, with no stack trace', async () => {
    const dir = copyOfSound('cli');
    const running = await startCli(['serve', '--port', '0', '--data-dir', dir]);
    try {
      const second = await runCli(['serve', '--port', '0', '--data-dir', dir]);
      expect(second.code).toBe(1);
      expect(second.stderr).toBe(
        `gpubroker: --data-dir: ${dir} is in use by another broker (pid ${running.child.pid}); stop it or pick another --data-dir\n`,
      );
      const port = /:(\d+)$/.exec(running.url)?.[1] as string;
      const busy = await runCli(['serve', '--port', port, '--data-dir', join(root, 'cli-other')]);
      expect(busy.code).toBe(1);
      expect(busy.stderr.trim().split('\n')).toHaveLength(1);
      expect(busy.stderr).toContain(`--port: 127.0.0.1:${port} is already in use`);
    } finally {
      await stopCli(running);
    }
    rmSync(join(dir, 'pgdata', 'PG_VERSION'));
    const damaged = await runCli(['serve', '--port', '0', '--data-dir', dir]);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr.trim().split('\n')).toHaveLength(1);
    expect(damaged.stderr).toContain('PG_VERSION is missing');
    const check = await runCli(['db', 'check', '--data-dir', dir]);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain('damaged');
    const fine = await runCli(['db', 'check', '--data-dir', sound]);
    expect(fine.code).toBe(0);
    expect(fine.stdout).toContain('sound');
  });
});

describe('gpubroker clouds serve', () => {
  it('on a port in use prints one line naming --port and exits 1', async () => {
    const running = await startCli(['clouds', 'serve', '--port', '0']);
    try {
      const port = /:(\d+)$/.exec(running.url)?.[1] as string;
      const busy = await runCli(['clouds', 'serve', '--port', port]);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toBe(
        `gpubroker: --port: 127.0.0.1:${port} is already in use; stop what listens there or pick another --port\n`,
      );
    } finally {
      await stopCli(running);
    }
  });
});
