/**
 * The SDK as a user gets it: both packages packed (`npm pack`), installed into an empty project with no network,
 * and used from there against a real broker on 127.0.0.1 (PGlite in a temporary directory, simulated AWS with a
 * 300 ms boot, a loop ticking every second): a plain `.mjs` in plain Node requests a lease and releases it, and
 * the README's example is type-checked (strict, `"module": "nodenext"`) against the installed types and run.
 *
 * `@gpubroker/sdk` is installed by `npm install --offline` from its tarball: it has no dependencies. The
 * `gpubroker` tarball is unpacked in node_modules as npm would place it, without its server dependencies (cloud
 * SDKs, PGlite, …): installing those needs the registry, and its SDK entry, checked here, needs none of them.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../broker/server.ts';
import { simScenario } from '../providers/sim/scenario.ts';
import { quietAwsScenario } from '../test/fast-aws.ts';
import { Broker } from './index.ts';
import { bytesUnder, MAX_INSTALLED_BYTES } from './testing/installed-size.ts';
import { SDK_VERSION } from './version.ts';

const execFileAsync = promisify(execFile);
const REPO = new URL('..', import.meta.url).pathname;
const SDK = join(REPO, 'sdk');

/** The environment of a child: this one without npm's per-run settings (`npm test` sets some). */
function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
  return { ...env, ...extra };
}

async function run(command: string, args: string[], cwd: string, env = childEnv()): Promise<string> {
  const { stdout } = await execFileAsync(command, args, { cwd, env, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** `npm pack` in `dir` into `into`; returns the tarball's path. */
async function pack(dir: string, into: string, ...flags: string[]): Promise<string> {
  const answer = JSON.parse(
    await run('npm', ['pack', '--json', '--pack-destination', into, ...flags], dir),
  ) as {
    filename: string;
  }[];
  return join(into, answer[0]?.filename ?? '');
}

/** The README's section on using the SDK: its install line and its TypeScript example. */
function readmeExample(): { install: string; code: string } {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const section = readme.split('\n## Use the SDK from your project\n')[1]?.split('\n## ')[0] ?? '';
  const install = /```sh\n(npm install [^\n]*)\n```/.exec(section)?.[1] ?? '';
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return { install, code };
}

/** Types a user's code relies on: `@ts-expect-error` fails the check if the SDK's types were `any`. */
const TYPED_USE = `import { Broker, BrokerApiError, type Lease, type Problem } from '@gpubroker/sdk';
import { App } from 'gpubroker';

export async function uses(broker: Broker): Promise<number> {
  const lease: Lease = await broker.leases.get('l-1');
  const status: 'pending' | 'ready' | 'failed' | 'released' | 'expired' = lease.status;
  // @ts-expect-error count is a number
  await broker.leases.create({ gpu: 'H100', count: '8' });
  // @ts-expect-error the API has no such route
  await broker.api('get', '/v1/nope');
  const month = await broker.api('get', '/v1/invoices/{month}', { params: { month: '2026-11' } });
  const app = new App('demo');
  const square = app.function({ gpu: 'H100' }, async (x: number) => x * x);
  // @ts-expect-error square takes a number
  await square.remote('3');
  const problem: Problem = new BrokerApiError({ type: 'about:blank', title: 'No', status: 400, detail: 'no' }).problem;
  return (await square.remote(3)) + (month.invoices[0]?.totalMicroUsd ?? 0) + problem.status + status.length;
}
`;

let server: RunningServer;
let dir: string;
let project: string;
const timings: Record<string, number> = {};

async function timed<T>(name: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    timings[name] = Math.round(performance.now() - started);
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gpubroker-pack-'));
  project = join(dir, 'project');
  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'scratch', private: true, type: 'module' }, null, 2),
  );
  // The SDK's pack runs its `prepare` (the build); the root's would build it again.
  const sdkTarball = await timed('pack sdk', () => pack(SDK, dir));
  const rootTarball = await timed('pack gpubroker', () => pack(REPO, dir, '--ignore-scripts'));
  await timed('install', async () => {
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', sdkTarball], project);
    const root = join(project, 'node_modules', 'gpubroker');
    mkdirSync(root, { recursive: true });
    await run('tar', ['-xzf', rootTarball, '-C', root, '--strip-components=1'], project);
  });
  server = await timed('broker start', () =>
    startServer({
      port: 0,
      dataDir: join(dir, 'broker'),
      scenario: simScenario({
        ...quietAwsScenario(1, 300),
        stock: { rules: [{ match: { instanceType: 'p5.4xlarge' }, onDemandPerZone: 0 }] },
      }),
    }),
  );
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
  console.log(`packaging e2e timings (ms): ${JSON.stringify(timings)}`);
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the SDK installed from its package', () => {
  it('installs with no dependency, under 5 MB', () => {
    const modules = join(project, 'node_modules');
    const installed = readdirSync(modules).filter((name) => !name.startsWith('.') && name !== 'gpubroker');
    expect(installed).toEqual(['@gpubroker']);
    expect(readdirSync(join(modules, '@gpubroker'))).toEqual(['sdk']);
    const bytes = bytesUnder(join(modules, '@gpubroker'));
    console.log(`@gpubroker/sdk installed: ${bytes} bytes`);
    expect(bytes).toBeLessThan(MAX_INSTALLED_BYTES);
    const manifest = JSON.parse(readFileSync(join(modules, 'gpubroker', 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(manifest.dependencies['@gpubroker/sdk']).toBe(SDK_VERSION);
  });

  it('requests a lease and releases it from a plain .mjs in plain Node', async () => {
    writeFileSync(
      join(project, 'lease.mjs'),
      `import { Broker, SDK_VERSION } from '@gpubroker/sdk';
import { App, Broker as FromGpubroker } from 'gpubroker';
const broker = new Broker();
const lease = await broker.gpus.request({ gpu: 'H100', count: 8, placement: 'single-node' }, { pollMs: 100 });
const released = await lease.release();
console.log(JSON.stringify({ id: lease.id, ready: lease.status, gpus: lease.allocations[0].gpuIndices.length,
  released: released.status, version: SDK_VERSION, sameSdk: FromGpubroker === Broker, app: typeof App }));
`,
    );
    const env = childEnv({ GPUBROKER_URL: server.url, GPUBROKER_TOKEN: server.operatorToken });
    const out = JSON.parse(
      await timed('lease.mjs', () => run(process.execPath, ['lease.mjs'], project, env)),
    );
    expect(out).toMatchObject({
      ready: 'ready',
      gpus: 8,
      released: 'released',
      version: SDK_VERSION,
      sameSdk: true,
      app: 'function',
    });
    const operator = new Broker({ url: server.url, token: server.operatorToken });
    expect((await operator.leases.get(out.id)).status).toBe('released');
  });

  it("type-checks the README's example (strict, nodenext) against the installed types, and runs it", async () => {
    const { install, code } = readmeExample();
    expect(install).toMatch(/^npm install @gpubroker\/sdk\b/);
    expect(code).toContain("from '@gpubroker/sdk'");
    writeFileSync(join(project, 'example.ts'), code);
    writeFileSync(join(project, 'typed.ts'), TYPED_USE);
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'nodenext',
          strict: true,
          lib: ['ES2022', 'ESNext.Disposable'],
          types: ['node'],
          typeRoots: [join(REPO, 'node_modules', '@types')],
          outDir: 'out',
        },
        files: ['example.ts', 'typed.ts'],
      }),
    );
    await timed('tsc', () =>
      run(join(REPO, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], project),
    );
    const env = childEnv({ GPUBROKER_URL: server.url, GPUBROKER_TOKEN: server.operatorToken });
    const out = await timed('example', () => run(process.execPath, ['out/example.js'], project, env));
    expect(out).toMatch(/instanceId/);
    const operator = new Broker({ url: server.url, token: server.operatorToken });
    const leases = await operator.leases.list();
    expect(leases).toHaveLength(2);
    expect(leases.map((lease) => lease.status)).toEqual(['released', 'released']);
  });
});
