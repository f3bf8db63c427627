/** `gpubroker serve` as a real child process: it prints its URL, writes the operator token (mode 600), answers. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const bin = new URL('../../bin/gpubroker.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'gpubroker-serve-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function serve(args: string[]): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, [bin, 'serve', '--port', '0', '--data-dir', dir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (chunk) => {
      output += chunk;
      const url = /listening on (http:\/\/\S+)/.exec(output)?.[1];
      if (url) resolve({ child, url, output: () => output });
    });
    child.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${output}`)));
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

describe('gpubroker serve', () => {
  it('starts on the embedded defaults, keeps its operator token across restarts, and stops cleanly', async () => {
    const first = await serve([]);
    expect(first.output()).toContain('import { Broker } from "gpubroker"');
    const tokenFile = join(dir, 'operator-token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(((await fetch(`${first.url}/healthz`).then((r) => r.json())) as { ok: boolean }).ok).toBe(true);
    const leases = await fetch(`${first.url}/v1/leases`, { headers: { authorization: `Bearer ${token}` } });
    expect(leases.status).toBe(200);
    expect(await stop(first.child)).toBe(0);

    const second = await serve([]);
    expect(readFileSync(tokenFile, 'utf8').trim()).toBe(token);
    const again = await fetch(`${second.url}/v1/leases`, { headers: { authorization: `Bearer ${token}` } });
    expect(again.status).toBe(200);
    expect(await stop(second.child)).toBe(0);
  });

  it('refuses an unknown provider with a message and exit status 2', async () => {
    const child = spawn(
      process.execPath,
      [bin, 'serve', '--port', '0', '--data-dir', dir, '--providers', 'moon'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk) => {
      stderr += chunk;
    });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('--providers: "moon" is not one of sim, local');
  });

  it('names the missing setting when a real cloud is asked for without configuration', async () => {
    const child = spawn(
      process.execPath,
      [bin, 'serve', '--port', '0', '--data-dir', dir, '--providers', 'aws'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, GPUBROKER_AWS_REGIONS: '' },
      },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk) => {
      stderr += chunk;
    });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toMatch(/^gpubroker: GPUBROKER_AWS_REGIONS: name the regions/);
    expect(stderr).not.toContain('    at ');
  });
});
