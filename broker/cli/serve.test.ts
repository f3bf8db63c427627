/**
 * `gpubroker serve` as a real child process: it prints its URL, writes the operator token (mode 600), answers, and
 * stops on SIGTERM. The refusals run in this process (test/cli-in-process.ts).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCliInProcess } from '../../test/cli-in-process.ts';
import { startCli, stopCli } from '../../test/cli-process.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-serve-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const serve = (args: string[]) => startCli(['serve', '--port', '0', '--data-dir', dir, ...args]);

describe('gpubroker serve', () => {
  it('starts on the embedded defaults, keeps its operator token across restarts, and stops cleanly', async () => {
    const first = await serve([]);
    expect(first.output()).toContain('import { Broker } from "gpubroker"');
    // The quick start's warm buffer: the first policy version, said on screen (and kept across restarts).
    const buffer = 'warm buffer: 8 H100 GPUs (policy version 1, set by serve (quick start))';
    expect(first.output()).toContain(buffer);
    const tokenFile = join(dir, 'operator-token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(((await fetch(`${first.url}/healthz`).then((r) => r.json())) as { ok: boolean }).ok).toBe(true);
    const leases = await fetch(`${first.url}/v1/leases`, { headers: { authorization: `Bearer ${token}` } });
    expect(leases.status).toBe(200);
    expect(await stopCli(first)).toBe(0);

    const second = await serve([]);
    expect(readFileSync(tokenFile, 'utf8').trim()).toBe(token);
    expect(second.output()).toContain(buffer);
    const again = await fetch(`${second.url}/v1/leases`, { headers: { authorization: `Bearer ${token}` } });
    expect(again.status).toBe(200);
    expect(await stopCli(second)).toBe(0);
  });

  it('refuses an unknown provider with a message and exit status 2', async () => {
    const { code, stderr } = await runCliInProcess([
      'serve',
      '--port',
      '0',
      '--data-dir',
      dir,
      '--providers',
      'moon',
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain('--providers: "moon" is not one of sim, local');
  });

  it('names the missing setting when a real cloud is asked for without configuration', async () => {
    // Loaded before the command runs: under load, loading the AWS SDK alone can outlast serve's 8 s step deadline.
    await Promise.all([
      import('../../providers/aws/aws-provider.ts'),
      import('../../providers/aws/aws-env.ts'),
    ]);
    const { code, stderr } = await runCliInProcess(
      [
        'serve',
        '--port',
        '0',
        '--data-dir',
        dir,
        '--providers',
        'aws',
        '--public-url',
        'https://broker.example',
      ],
      { env: { GPUBROKER_AWS_REGIONS: '' } },
    );
    expect(code).toBe(2);
    expect(stderr).toMatch(/^gpubroker: GPUBROKER_AWS_REGIONS: name the regions/);
    expect(stderr).not.toContain('    at ');
  });

  it('needs the URL at which cloud instances reach it (--public-url or GPUBROKER_PUBLIC_URL) before anything starts', async () => {
    const { code, stderr } = await runCliInProcess(
      ['serve', '--port', '0', '--data-dir', dir, '--providers', 'sim,azure'],
      { env: { GPUBROKER_PUBLIC_URL: undefined } },
    );
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/^gpubroker: --public-url: required with azure: /);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    const fromEnv = await runCliInProcess(['serve', '--port', '0', '--data-dir', dir, '--providers', 'gcp'], {
      env: { GPUBROKER_PUBLIC_URL: 'https://broker.example/$(id)' },
    });
    expect(fromEnv.stderr).toMatch(/^gpubroker: --public-url: may hold only URL characters/);
  });
});
