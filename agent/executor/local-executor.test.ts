import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import {
  ContainerExitedError,
  type ContainerSpec,
  InputNotStartedError,
  type LogLine,
  RemoteError,
} from '../../runtime/executor/executor.ts';
import { LocalExecutor } from './local-executor.ts';

const APP = `
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

export function add(a, b) {
  return a + b;
}

export async function echo(value) {
  return value;
}

export function boom(message) {
  throw new TypeError(message);
}

const waiting = [];
/** Resolves only once n calls are waiting at the same time: proves the worker runs inputs concurrently. */
export function gather(n, tag) {
  return new Promise((resolve) => {
    waiting.push(() => resolve(tag));
    if (waiting.length === n) for (const release of waiting.splice(0)) release();
  });
}

export function returnsFunction() {
  return { callback: () => 1 };
}

export function returnsClassInstance() {
  class Point {
    constructor() {
      this.x = 1;
    }
    norm() {
      return this.x;
    }
  }
  return new Point();
}

export function crash(code) {
  process.exit(code);
}

export function hang() {
  return new Promise(() => {});
}

export function environment() {
  return { ...process.env };
}

export function whereAmI() {
  writeFileSync('scratch.txt', 'mine');
  return process.cwd();
}

export function pid() {
  return process.pid;
}

export function startsChild() {
  return spawn('sleep', ['30'], { stdio: 'inherit' }).pid;
}

export function chatty() {
  console.log('line one\\nline two');
  console.error('to stderr');
  return 'done';
}

export const app = {
  __gpubrokerFunction(name) {
    return name === 'viaApp' ? (x) => \`app:\${x}\` : undefined;
  },
};
`;

const STUBBORN = `
process.on('SIGTERM', () => console.log('ignoring SIGTERM'));
export function pid() {
  return process.pid;
}
`;

let dir: string;
let appBundle: string;
let executor: LocalExecutor;
let next = 0;

beforeAll(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'gpubroker-executor-')));
  appBundle = join(dir, 'app.mjs');
  writeFileSync(appBundle, APP);
  writeFileSync(join(dir, 'stubborn.mjs'), STUBBORN);
  writeFileSync(join(dir, 'broken.mjs'), 'export function f( {\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

afterEach(async () => {
  await executor?.close();
});

function newExecutor(options: { clock?: VirtualClock; stopGraceMs?: number; nodePath?: string } = {}) {
  executor = new LocalExecutor({ workRoot: join(dir, 'containers'), ...options });
  return executor;
}

function spec(functionName: string, overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    containerId: `ctr_${next++}`,
    tenantId: 'tenant_a',
    app: 'demo',
    functionName,
    bundleId: 'tenant/app',
    bundlePath: appBundle,
    instanceId: 'inst_1',
    gpuIndices: [0],
    env: {},
    concurrency: 4,
    cpu: 1,
    memoryMiB: 4096,
    network: 'egress',
    ...overrides,
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('LocalExecutor', () => {
  it("imports an image layer's packages from its node_modules, and removes the container's link to it after", async () => {
    const layer = join(dir, 'layer', 'node_modules', 'layer-dep');
    mkdirSync(layer, { recursive: true });
    writeFileSync(
      join(layer, 'package.json'),
      JSON.stringify({ name: 'layer-dep', type: 'module', main: 'index.js' }),
    );
    writeFileSync(join(layer, 'index.js'), 'export const seven = () => 7;\n');
    const bundle = join(dir, 'uses-layer.mjs');
    writeFileSync(
      bundle,
      "export async function useLayer() { return (await import('layer-dep')).seven(); }\n",
    );
    const container = newExecutor().start(
      spec('useLayer', { bundlePath: bundle, nodeModulesPath: join(dir, 'layer', 'node_modules') }),
    );
    expect(await container.invoke('l1', [])).toBe(7);
    await container.stop();
    expect(existsSync(join(dir, 'containers', `${container.containerId}.app`))).toBe(false);
    // The layer itself is the agent's, shared: it stays.
    expect(existsSync(layer)).toBe(true);
  });

  it('starts a container, becomes ready and runs inputs with structured-clone values both ways', async () => {
    const executor = newExecutor();
    const container = executor.start(spec('add'));
    await container.ready;
    expect(await container.invoke('call_1', [2, 3])).toBe(5);
    const echo = executor.start(spec('echo'));
    const value = {
      at: new Date(0),
      counts: new Map([['a', 1]]),
      bytes: new Uint8Array([1, 2]),
      big: 2n ** 70n,
    };
    expect(await echo.invoke('call_2', [value])).toEqual(value);
    const viaApp = executor.start(spec('viaApp'));
    expect(await viaApp.invoke('call_3', ['x'])).toBe('app:x');
  });

  it('runs inputs concurrently inside one container', async () => {
    const container = newExecutor().start(spec('gather'));
    const results = await Promise.all(
      ['a', 'b', 'c', 'd'].map((tag, i) => container.invoke(`call_${i}`, [4, tag], { timeoutMs: 10_000 })),
    );
    expect(results).toEqual(['a', 'b', 'c', 'd']);
  });

  it('rejects with a RemoteError carrying the message, name and the stack from the bundle', async () => {
    const container = newExecutor().start(spec('boom'));
    const error = await container.invoke('call_1', ['bad input']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteError);
    expect((error as RemoteError).message).toBe('bad input');
    expect((error as RemoteError).remoteName).toBe('TypeError');
    expect((error as RemoteError).remoteStack).toMatch(/at boom \(file:\/\/.*\/app\.mjs:\d+:\d+\)/);
    expect(await container.invoke('call_2', ['again']).catch((e: Error) => e.message)).toBe('again');
  });

  it('refuses a return value that cannot be sent, naming what is wrong, and keeps serving', async () => {
    const executor = newExecutor();
    const fn = executor.start(spec('returnsFunction'));
    await expect(fn.invoke('call_1', [])).rejects.toThrow(
      /returned a value that cannot be sent back: the return value\.callback is a function/,
    );
    expect(await fn.invoke('call_2', []).catch((e: RemoteError) => e.remoteName)).toBe('TypeError');
    const instance = executor.start(spec('returnsClassInstance'));
    await expect(instance.invoke('call_3', [])).rejects.toThrow(/the return value is a Point instance/);
  });

  it('refuses an argument that cannot be sent at the call site, without reaching the container', async () => {
    const container = newExecutor().start(spec('echo'));
    await expect(container.invoke('call_1', [{ callback: () => 1 }])).rejects.toThrow(
      new TypeError(
        `input call_1 cannot be sent to container ${container.containerId}: args[0].callback is a function`,
      ),
    );
    await expect(container.invoke('call_2', [new URL('https://example.com')])).rejects.toThrow(
      /URL instance/,
    );
    await expect(container.invoke('call_3', [Symbol('s')])).rejects.toThrow(/args\[0\] is a symbol/);
    expect(await container.invoke('call_4', ['still fine'])).toBe('still fine');
  });

  it('rejects ready with the load error when the bundle does not parse, and the container exits', async () => {
    const container = newExecutor().start(spec('f', { bundlePath: join(dir, 'broken.mjs') }));
    const error = await container.ready.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteError);
    expect((error as RemoteError).remoteName).toBe('SyntaxError');
    expect((error as Error).message).toMatch(/failed to load its bundle: Unexpected /);
    const exit = await container.exited;
    expect(exit).toMatchObject({ code: 1, reason: expect.stringMatching(/^failed to load bundle: /) });
    await expect(container.invoke('call_1', [])).rejects.toBeInstanceOf(ContainerExitedError);
  });

  it('rejects ready when the bundle has no such function, listing what it exports', async () => {
    const container = newExecutor().start(spec('nope'));
    await expect(container.ready).rejects.toThrow(
      /function "nope" not found in bundle .*exported functions: add, /,
    );
    expect((await container.exited).code).toBe(1);
  });

  it('rejects every input in flight with ContainerExitedError naming the exit code when it crashes', async () => {
    const executor = newExecutor();
    const container = executor.start(spec('crash'));
    await container.ready;
    const crashing = container.invoke('call_1', [3]);
    await expect(crashing).rejects.toThrow(
      new ContainerExitedError(container.containerId, 'crashed (exit 3)'),
    );
    expect(await container.exited).toMatchObject({ code: 3, signal: null, reason: 'crashed (exit 3)' });
    await expect(container.invoke('call_2', [0])).rejects.toBeInstanceOf(ContainerExitedError);
  });

  it('kills the container when an input runs past its timeout on the clock', async () => {
    const clock = new VirtualClock(1_000);
    const container = newExecutor({ clock }).start(spec('hang'));
    await container.ready;
    const slow = container.invoke('call_1', [], { timeoutMs: 30_000 });
    const other = container.invoke('call_2', []);
    await clock.advanceBy(30_000);
    await expect(slow).rejects.toThrow(/killed: input timed out after 30000 ms/);
    await expect(other).rejects.toBeInstanceOf(ContainerExitedError);
    expect(await container.exited).toMatchObject({
      signal: 'SIGKILL',
      reason: 'killed: input timed out after 30000 ms',
    });
  });

  it('holds inputs beyond its concurrency until one ends; one still waiting when it dies never started', async () => {
    const clock = new VirtualClock(1_000);
    const container = newExecutor({ clock }).start(spec('hang', { concurrency: 1 }));
    await container.ready;
    const running = container.invoke('call_1', [], { timeoutMs: 30_000 });
    const waiting = container.invoke('call_2', [], { timeoutMs: 30_000 });
    await clock.advanceBy(30_000);
    await expect(running).rejects.toThrow(/killed: input timed out after 30000 ms/);
    // Its own timeout had not started: it was never sent to the worker.
    await expect(waiting).rejects.toBeInstanceOf(InputNotStartedError);
    const adder = newExecutor().start(spec('add', { concurrency: 1 }));
    expect(await Promise.all([1, 2, 3].map((x) => adder.invoke(`add_${x}`, [x, x])))).toEqual([2, 4, 6]);
  });

  it('stops with SIGTERM, then SIGKILL once the grace period has passed on the clock', async () => {
    const clock = new VirtualClock(0);
    const container = newExecutor({ clock, stopGraceMs: 5_000 }).start(
      spec('pid', { bundlePath: join(dir, 'stubborn.mjs') }),
    );
    const pid = (await container.invoke('call_1', [])) as number;
    const ignored = new Promise<void>((resolve) =>
      container.onLog((line) => line.text === 'ignoring SIGTERM' && resolve()),
    );
    const stopping = container.stop();
    expect(container.stop()).toBe(stopping);
    await ignored;
    expect(isAlive(pid)).toBe(true);
    await clock.advanceBy(5_000);
    const exit = await stopping;
    expect(exit).toEqual({ code: null, signal: 'SIGKILL', reason: 'stopped (SIGKILL after 5000 ms grace)' });
    expect(isAlive(pid)).toBe(false);
    expect(await container.stop()).toBe(exit);
  });

  it('stops a well-behaved container on SIGTERM and rejects what was in flight', async () => {
    const container = newExecutor().start(spec('hang'));
    await container.ready;
    const inFlight = expect(container.invoke('call_1', [])).rejects.toThrow(
      new ContainerExitedError(container.containerId, 'stopped'),
    );
    expect(await container.stop()).toEqual({ code: null, signal: 'SIGTERM', reason: 'stopped' });
    await inFlight;
  });

  it('takes down what the container started with it', { timeout: 10_000 }, async () => {
    const container = newExecutor().start(spec('startsChild'));
    const sleeper = (await container.invoke('call_1', [])) as number;
    expect(isAlive(sleeper)).toBe(true);
    // The sleeper holds the container's stdout: `exited` could not resolve before it is gone.
    expect((await container.stop()).reason).toBe('stopped');
  });

  it('gives the container only its spec env, its GPUs and its identity, none of the host environment', async () => {
    process.env.GPUBROKER_TOKEN = 'host-secret';
    try {
      const s = spec('environment', {
        gpuIndices: [2, 3],
        env: { MODEL: 'llama', GPUBROKER_CONTAINER_ID: 'spoofed' },
      });
      const env = (await newExecutor().start(s).invoke('call_1', [])) as Record<string, string>;
      expect(Object.keys(env).sort()).toEqual([
        'CUDA_VISIBLE_DEVICES',
        'GPUBROKER_APP',
        'GPUBROKER_CONTAINER_ID',
        'GPUBROKER_FUNCTION',
        'GPUBROKER_TENANT',
        'HOME',
        'MODEL',
        'PATH',
      ]);
      expect(env).toMatchObject({
        CUDA_VISIBLE_DEVICES: '2,3',
        MODEL: 'llama',
        GPUBROKER_CONTAINER_ID: s.containerId,
        GPUBROKER_APP: 'demo',
        GPUBROKER_FUNCTION: 'environment',
        GPUBROKER_TENANT: 'tenant_a',
        HOME: join(dir, 'containers', s.containerId),
      });
    } finally {
      delete process.env.GPUBROKER_TOKEN;
    }
  });

  it('works in its own directory, removed once it has stopped', async () => {
    const executor = newExecutor();
    const [a, b] = [executor.start(spec('whereAmI')), executor.start(spec('whereAmI'))];
    const [cwdA, cwdB] = await Promise.all([a.invoke('call_1', []), b.invoke('call_2', [])]);
    expect(cwdA).toBe(join(dir, 'containers', a.containerId));
    expect(cwdB).toBe(join(dir, 'containers', b.containerId));
    expect(existsSync(join(cwdA as string, 'scratch.txt'))).toBe(true);
    await a.stop();
    expect(existsSync(cwdA as string)).toBe(false);
    expect(existsSync(cwdB as string)).toBe(true);
    await executor.close();
    expect(existsSync(cwdB as string)).toBe(false);
  });

  it('delivers stdout and stderr line by line with the container id and the clock time', async () => {
    const clock = new VirtualClock(42_000);
    const container = newExecutor({ clock }).start(spec('chatty'));
    const lines: LogLine[] = [];
    container.onLog((line) => lines.push(line));
    expect(await container.invoke('call_1', [])).toBe('done');
    await container.stop();
    const id = container.containerId;
    expect(lines.filter((l) => l.stream === 'stdout')).toEqual([
      { containerId: id, stream: 'stdout', text: 'line one', atMs: 42_000 },
      { containerId: id, stream: 'stdout', text: 'line two', atMs: 42_000 },
    ]);
    expect(lines.filter((l) => l.stream === 'stderr')).toEqual([
      { containerId: id, stream: 'stderr', text: 'to stderr', atMs: 42_000 },
    ]);
  });

  it('reports a node binary that cannot be started through ready and exited', async () => {
    const container = newExecutor({ nodePath: join(dir, 'no-such-node') }).start(spec('add'));
    await expect(container.ready).rejects.toThrow(/failed to start: spawn .*ENOENT/);
    expect((await container.exited).reason).toMatch(/^failed to start/);
    expect(existsSync(join(dir, 'containers', container.containerId))).toBe(false);
  });

  it('refuses a container id that is not a plain directory name', () => {
    expect(() => newExecutor().start(spec('add', { containerId: '../escape' }))).toThrow(RangeError);
  });
});
