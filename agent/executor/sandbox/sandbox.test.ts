/**
 * Containers in bubblewrap, for real: a probe function tries what a hostile tenant would (read the broker's operator
 * token and the agent's credential, signal the agent, write to /usr and /root, see GPUs it was not given, read
 * another container's scratch directory, reach the network with `network: 'none'`, outgrow its memory) and every
 * attempt is asserted blocked. Needs bubblewrap and root; `.ci/run` installs bubblewrap, so under CI a missing
 * sandbox fails the suite instead of skipping it.
 */

import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContainerExitedError, type ContainerSpec } from '../../../runtime/executor/executor.ts';
import { LocalExecutor } from '../local-executor.ts';
import { BubblewrapSandbox } from './bubblewrap.ts';

const PROBE = `
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { spawn } from 'node:child_process';

function attempt(action) {
  try {
    const value = action();
    return { ok: true, value: typeof value === 'string' ? value.slice(0, 80) : value };
  } catch (error) {
    return { ok: false, code: error.code ?? error.message };
  }
}

export function probe(targets) {
  return {
    uid: process.getuid(),
    gid: process.getgid(),
    cwd: process.cwd(),
    home: process.env.HOME,
    cuda: process.env.CUDA_VISIBLE_DEVICES,
    dev: readdirSync('/dev').filter((name) => name.startsWith('nvidia')).sort(),
    pids: readdirSync('/proc').filter((name) => /^\\d+$/.test(name)).length,
    operatorToken: attempt(() => readFileSync(targets.operatorToken, 'utf8')),
    credential: attempt(() => readFileSync(targets.credential, 'utf8')),
    signalAgent: attempt(() => process.kill(targets.agentPid, 'SIGTERM')),
    writeUsr: attempt(() => writeFileSync('/usr/evil', 'x')),
    writeRoot: attempt(() => writeFileSync('/root/evil', 'x')),
    writeTop: attempt(() => writeFileSync('/evil', 'x')),
    otherScratch: attempt(() => readFileSync(targets.otherScratch + '/secret.txt', 'utf8')),
    scratch: attempt(() => { writeFileSync('/scratch/mine.txt', 'mine'); return readFileSync('mine.txt', 'utf8'); }),
    status: readFileSync('/proc/self/status', 'utf8').split('\\n').filter((l) => l.startsWith('Cap') || l.startsWith('NoNewPrivs')),
  };
}

export function keepSecret(secret) {
  writeFileSync('secret.txt', secret);
  return process.cwd();
}

export async function reach(url) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return { ok: true, status: response.status };
  } catch (error) {
    return { ok: false, code: error.cause?.code ?? error.name };
  }
}

export function hog(mib) {
  const kept = [];
  for (let i = 0; i < mib; i++) kept.push(Buffer.alloc(1024 * 1024, 1));
  return kept.length;
}

export function startsSleeper() {
  spawn('sleep', ['300'], { stdio: 'ignore', detached: true }).unref();
  return true;
}
`;

let sandbox: BubblewrapSandbox | undefined;
let why = '';
try {
  sandbox = BubblewrapSandbox.detect();
} catch (error) {
  why = (error as Error).message;
}
if (!sandbox && process.env.CI)
  throw new Error(`the sandbox tests need bubblewrap and root under CI: ${why}`);

let dir: string;
let devRoot: string;
let executor: LocalExecutor;
let server: Server;
let serverUrl: string;
let next = 0;

function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

function spec(functionName: string, overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    containerId: `ctr_sandbox_${process.pid}_${next++}`,
    tenantId: 'tenant_a',
    app: 'probe',
    functionName,
    bundleId: 'tenant_a/probe',
    bundlePath: join(dir, 'probe.mjs'),
    instanceId: 'inst_1',
    gpuIndices: [1],
    env: {},
    concurrency: 1,
    cpu: 1,
    memoryMiB: 256,
    network: 'egress',
    ...overrides,
  };
}

describe.skipIf(!sandbox)(`containers in bubblewrap${sandbox ? '' : ` (skipped: ${why})`}`, () => {
  beforeAll(async () => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'gpubroker-sandbox-')));
    writeFileSync(join(dir, 'probe.mjs'), PROBE);
    // A broker's data directory and an agent's credential, as they lie on a machine.
    mkdirSync(join(dir, 'broker-data'), { mode: 0o700 });
    writeFileSync(join(dir, 'broker-data', 'operator-token'), 'gpo_secret', { mode: 0o600 });
    writeFileSync(join(dir, 'agent-credential'), 'gpa_secret', { mode: 0o600 });
    // Four GPUs' device nodes and the control device (plain files stand in for the character devices).
    devRoot = join(dir, 'dev');
    mkdirSync(devRoot);
    for (const name of ['nvidia0', 'nvidia1', 'nvidia2', 'nvidia3', 'nvidiactl'])
      writeFileSync(join(devRoot, name), '');
    executor = new LocalExecutor({
      workRoot: join(dir, 'containers'),
      sandbox: BubblewrapSandbox.detect({ devRoot }),
      stopGraceMs: 1_000,
    });
    server = createServer((_, response) => response.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    serverUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`;
  });

  afterAll(async () => {
    await executor?.close();
    await new Promise((resolve) => server?.close(resolve));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('blocks every attempt to reach the host, the agent, other GPUs and other containers', async () => {
    const other = executor.start(spec('keepSecret', { tenantId: 'tenant_b', gpuIndices: [2] }));
    expect(await other.invoke('c0', ['tenant b secret'])).toBe('/scratch');
    const otherScratch = join(dir, 'containers', other.containerId);
    // On the host, the other tenant's scratch belongs to its own user, and nobody else may enter.
    const stat = statSync(otherScratch);
    expect(stat.mode & 0o777).toBe(0o700);
    expect(stat.uid).toBeGreaterThanOrEqual(200_000);

    const container = executor.start(spec('probe'));
    const seen = (await container.invoke('c1', [
      {
        operatorToken: join(dir, 'broker-data', 'operator-token'),
        credential: join(dir, 'agent-credential'),
        agentPid: process.pid,
        otherScratch,
      },
    ])) as Record<string, unknown>;
    expect(seen.uid).toBeGreaterThanOrEqual(200_000);
    expect(seen.uid).not.toBe(stat.uid);
    expect(seen.gid).toBe(seen.uid);
    expect(seen).toMatchObject({ cwd: '/scratch', home: '/scratch', cuda: '1' });
    // Only its own GPU and the control device.
    expect(seen.dev).toEqual(['nvidia1', 'nvidiactl']);
    // Its own PID namespace: bubblewrap's init, the worker, and nothing of the host.
    expect(seen.pids).toBeLessThanOrEqual(3);
    expect(seen.operatorToken).toEqual({ ok: false, code: 'ENOENT' });
    expect(seen.credential).toEqual({ ok: false, code: 'ENOENT' });
    expect(seen.signalAgent).toEqual({ ok: false, code: 'ESRCH' });
    expect(seen.writeUsr).toEqual({ ok: false, code: 'EROFS' });
    expect((seen.writeRoot as { ok: boolean }).ok).toBe(false);
    expect(seen.writeTop).toEqual({ ok: false, code: 'EROFS' });
    expect(seen.otherScratch).toEqual({ ok: false, code: 'ENOENT' });
    expect(seen.scratch).toEqual({ ok: true, value: 'mine' });
    // No capability left, and no way to gain one.
    expect(seen.status).toEqual(
      expect.arrayContaining(['CapEff:\t0000000000000000', 'CapBnd:\t0000000000000000', 'NoNewPrivs:\t1']),
    );
    await container.stop();
    await other.stop();
    // Scratch directories are removed with their containers.
    expect(existsSync(otherScratch)).toBe(false);
  });

  it("keeps a function with network 'none' off the network, and one with egress on it", async () => {
    const offline = executor.start(spec('reach', { network: 'none' }));
    const online = executor.start(spec('reach'));
    expect(await offline.invoke('n1', [serverUrl])).toMatchObject({ ok: false });
    expect(await online.invoke('n2', [serverUrl])).toEqual({ ok: true, status: 200 });
    await Promise.all([offline.stop(), online.stop()]);
  });

  it('fails a container past its memory limit with the reason, and leaves the machine alone', async () => {
    const container = executor.start(spec('hog', { memoryMiB: 128 }));
    await container.ready;
    const failure = await container.invoke('m1', [1024]).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ContainerExitedError);
    expect((failure as ContainerExitedError).reason).toBe('out of memory (limit 128 MiB)');
    expect((await container.exited).reason).toBe('out of memory (limit 128 MiB)');
    // The same function within its limit, next door, is fine.
    const roomy = executor.start(spec('hog', { memoryMiB: 512 }));
    expect(await roomy.invoke('m2', [64])).toBe(64);
    await roomy.stop();
  });

  it("ends what a previous run of the same agent left running, and nobody else's", async () => {
    const scope = `agent-test-${process.pid}`;
    const other = new LocalExecutor({
      workRoot: join(dir, 'other'),
      sandbox: BubblewrapSandbox.detect({ devRoot, scope: `${scope}-other` }),
    });
    const dying = new LocalExecutor({
      workRoot: join(dir, 'dying'),
      sandbox: BubblewrapSandbox.detect({ devRoot, scope }),
    });
    const left = dying.start(spec('startsSleeper'));
    const neighbour = other.start(spec('startsSleeper'));
    expect(await left.invoke('l1', [])).toBe(true);
    expect(await neighbour.invoke('l2', [])).toBe(true);
    // The agent that started it is gone: a new run with the same state directory (the same scope) starts.
    const again = BubblewrapSandbox.detect({ devRoot, scope });
    expect(await again.sweepLeftovers()).toBe(1);
    expect((await left.exited).reason).toMatch(/crashed/);
    // The other agent's container runs on.
    expect(await neighbour.invoke('l3', [])).toBe(true);
    await other.close();
    await dying.close();
  });

  it('kills the whole cgroup when it stops, whatever the function started', async () => {
    const container = executor.start(spec('startsSleeper'));
    expect(await container.invoke('s1', [])).toBe(true);
    const launch = (
      container as unknown as { sandboxed: { launch: { cgroup: { pids(): number[]; dirs: string[] } } } }
    ).sandboxed.launch;
    const pids = launch.cgroup.pids();
    // sh→bwrap, bwrap's init, the worker, and the sleeper.
    expect(pids.length).toBeGreaterThanOrEqual(4);
    await container.stop();
    // Gone, or a zombie its reaper has yet to collect.
    for (const pid of pids) expect(running(pid), `pid ${pid}`).toBe(false);
    for (const cgroupDir of launch.cgroup.dirs) expect(existsSync(cgroupDir)).toBe(false);
  });
});

describe.skipIf(!sandbox)('gpubroker agent without what isolation needs', () => {
  it('refuses to start in one line, and names --isolation none', () => {
    // Not root: no cgroup and no user per container can be made.
    const run = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        'bin/gpubroker.js',
        'agent',
        '--broker',
        'http://127.0.0.1:9',
        '--token',
        'gpj_unused',
        '--virtual-gpus',
        '1xH100',
        '--state-dir',
        mkdtempSync(join(tmpdir(), 'gpubroker-agent-nobody-')),
      ],
      { encoding: 'utf8', env: { ...process.env, GPUBROKER_BUILD: '0' }, timeout: 60_000 },
    );
    // A setting that cannot be had: the CLI's status for bad input.
    expect(run.status).toBe(2);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/--isolation: isolation needs root .* or pass --isolation none/);
  });
});
