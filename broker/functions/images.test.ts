/**
 * Images defined in code, end to end: `Image.node20().npmInstall([...]).env({...})` on a function, deployed with
 * `deployModule` (as `gpubroker run|deploy` does) to a real broker whose local agent host runs the containers
 * (in bubblewrap where the machine allows). The npm package is a local tarball, so nothing reaches a registry.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { c as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BubblewrapSandbox } from '../../agent/executor/sandbox/bubblewrap.ts';
import { simScenario } from '../../providers/sim/scenario.ts';
import type { FunctionHandle } from '../../sdk/app.ts';
import { ensureLayer, layerIdOf } from '../../sdk/cli/image-layer.ts';
import { deployModule } from '../../sdk/cli/run.ts';
import { Broker, BrokerApiError } from '../../sdk/index.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY } from '../../test/fast-aws.ts';
import { type RunningServer, startServer } from '../server.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-images-'));
let isolated = true;
try {
  BubblewrapSandbox.check();
} catch {
  isolated = false;
}
let server: RunningServer;
let broker: Broker;

/** A package tarball as `npm pack` makes one: `package/package.json` and its module. */
async function packageTarball(name: string, version: string): Promise<string> {
  const root = join(dir, `${name}-${version}`);
  mkdirSync(join(root, 'package'), { recursive: true });
  writeFileSync(
    join(root, 'package', 'package.json'),
    JSON.stringify({ name, version, type: 'module', main: 'index.js' }),
  );
  writeFileSync(
    join(root, 'package', 'index.js'),
    'export const answer = () => 42;\nexport const where = () => import.meta.url;\n',
  );
  const file = join(dir, `${name}-${version}.tgz`);
  await createTar({ gzip: true, cwd: root, file }, ['package']);
  return file;
}

beforeAll(async () => {
  server = await startServer({
    port: 0,
    dataDir: join(dir, 'data'),
    seed: 5,
    scenario: simScenario(FAST_AWS_SCENARIO as never),
    agentIsolation: isolated ? 'bubblewrap' : 'none',
  });
  await server.broker.setPolicy(FAST_POLICY, 'test');
  broker = new Broker({ url: server.url, token: server.operatorToken as string });
  process.env.GPUBROKER_TEST_LAYER_PACKAGE = await packageTarball('gpubroker-fixture-answer', '1.0.0');
});
afterAll(async () => {
  delete process.env.GPUBROKER_TEST_LAYER_PACKAGE;
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe(`images defined in code (${isolated ? 'in bubblewrap' : 'unisolated: no bubblewrap here'})`, () => {
  it('installs the npm packages into a layer once, shared by the containers; env reaches only its function', async () => {
    const { exports } = await deployModule(broker, 'test/fixtures/image-app.ts', true);
    const useDep = exports.useDep as FunctionHandle<[], { answer: number; where: string; greeting: string }>;
    const plain = exports.plain as FunctionHandle<[], string>;
    const first = await useDep.remote();
    expect(first.answer).toBe(42);
    expect(first.greeting).toBe('hello from the image');
    // Imported from the image's layer, not from the bundle.
    expect(first.where).toMatch(/\/node_modules\/gpubroker-fixture-answer\/index\.js$/);
    if (isolated) expect(first.where).toBe('file:///app/node_modules/gpubroker-fixture-answer/index.js');
    expect(await plain.remote()).toBe('undefined');

    // Deployed again, unchanged: the broker has the layer, nothing is built or uploaded.
    const spec = { base: 'node20' as const, npm: [process.env.GPUBROKER_TEST_LAYER_PACKAGE as string] };
    const again = await ensureLayer(broker, spec, () => {});
    expect(again.uploadedBytes).toBeUndefined();
    expect(again.packages).toEqual(['gpubroker-fixture-answer']);
    // Many containers, one layer on the agent's disk.
    const results = await Promise.all(Array.from({ length: 6 }, () => useDep.remote()));
    expect(results.every((r) => r.answer === 42)).toBe(true);
    const layers = readdirSync(join(server.broker.stateDir, 'agent-host', 'layers'));
    expect(layers.filter((name) => /^[0-9a-f]{64}$/.test(name))).toHaveLength(1);

    // A changed list is a new layer.
    const other = await packageTarball('gpubroker-fixture-other', '2.0.0');
    const changed = { base: 'node20' as const, npm: [...spec.npm, other] };
    expect(layerIdOf(changed)).not.toBe(again.id);
    const built = await ensureLayer(broker, changed, () => {});
    expect(built.uploadedBytes).toBeGreaterThan(0);
    expect(built.packages).toEqual(['gpubroker-fixture-answer', 'gpubroker-fixture-other']);
  });

  it.skipIf(!isolated)('fails a call past its memory limit with the reason, after its retry', async () => {
    const { exports } = await deployModule(broker, 'test/fixtures/image-app.ts', true);
    const hog = exports.hog as FunctionHandle<[number], number>;
    expect(await hog.remote(16)).toBe(16);
    const error = await hog.remote(1024).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/out of memory \(limit 128 MiB\)/);
    const call = await hog.spawn(1024);
    await call.get().catch(() => undefined);
    expect((await broker.call<{ attempts: number }>('GET', `/v1/calls/${call.id}`)).attempts).toBe(2);
  });

  it('refuses a function whose image layer was not uploaded, naming the field, and a body that is not a layer', async () => {
    const code = new TextEncoder().encode('export const f = () => 1;\n');
    const bundleId = createHash('sha256').update(code).digest('hex');
    const stored = await fetch(`${server.url}/v1/bundles/${bundleId}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${server.operatorToken}` },
      body: code,
    });
    expect(stored.ok).toBe(true);
    const missing = 'a'.repeat(64);
    const deploy = (image: unknown) =>
      broker.call('PUT', '/v1/apps/broken', {
        bundleId,
        functions: { f: { gpu: 'H100', image } },
      });
    for (const [image, field] of [
      [{ base: 'node20', npm: ['x@1'], layer: missing }, 'functions.f.image.layer'],
      [{ base: 'node20', npm: ['x@1'] }, 'functions.f.image.layer'],
      [{ base: 'node18' }, 'functions.f.image.base'],
    ] as const) {
      const error = await deploy(image).catch((e: unknown) => e);
      expect(error, JSON.stringify(image)).toBeInstanceOf(BrokerApiError);
      expect((error as BrokerApiError).status).toBe(400);
      expect((error as BrokerApiError).problem.field).toBe(field);
    }
    const upload = await fetch(`${server.url}/v1/layers/${missing}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${server.operatorToken}`, 'content-type': 'application/gzip' },
      body: 'not a tarball',
    });
    expect(upload.status).toBe(400);
    expect(((await upload.json()) as { field: string }).field).toBe('body');
    const lookup = await fetch(`${server.url}/v1/layers/${missing}`, {
      headers: { authorization: `Bearer ${server.operatorToken}` },
    });
    expect(lookup.status).toBe(404);
  });
});
