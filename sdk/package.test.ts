/**
 * The SDK package, quickly (the whole pack-and-install path is package.e2e.test.ts): it depends on nothing, its
 * source imports nothing outside sdk/ but Node's own modules, and its build (tsc, as `prepare` runs it) loads in
 * plain Node with no loader, sends its version, takes and releases a lease, and weighs well under 5 MB.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleModule } from '../sdk/cli/run.ts';
import { bytesUnder, MAX_INSTALLED_BYTES } from './testing/installed-size.ts';
import { SDK_VERSION, SDK_VERSION_HEADER } from './version.ts';

const run = promisify(execFile);
const SDK = new URL('.', import.meta.url).pathname;
const TSC = new URL('../node_modules/.bin/tsc', import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(join(SDK, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  type: string;
  engines: { node: string };
  files: string[];
  exports: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
};

let out: string;
beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), 'gpubroker-sdk-build-'));
  await run(TSC, ['-p', join(SDK, 'tsconfig.json'), '--outDir', out]);
});
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('the @gpubroker/sdk package', () => {
  it('is an ES module package of its own version, for Node 20, that depends on nothing', () => {
    expect(manifest.name).toBe('@gpubroker/sdk');
    expect(manifest.version).toBe(SDK_VERSION);
    expect(manifest.type).toBe('module');
    expect(manifest.engines.node).toBe('>=20');
    expect(manifest.files).toEqual(['dist']);
    expect(manifest.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
    expect(manifest.dependencies ?? {}).toEqual({});
    expect(manifest.peerDependencies ?? {}).toEqual({});
  });

  it("imports nothing but its own files and Node's modules (no broker/, runtime/, lib/, zod or hono)", () => {
    const sources = readdirSync(SDK).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
    expect(sources).toContain('index.ts');
    const graph = new Map<string, string[]>();
    for (const file of sources) {
      const text = readFileSync(join(SDK, file), 'utf8');
      const specifiers = [
        ...text.matchAll(/^(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm),
        ...text.matchAll(/^import\s*['"]([^'"]+)['"]/gm),
        ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]/g),
      ].map((match) => match[1] as string);
      if (file === 'api-client.ts')
        expect(specifiers).toEqual(expect.arrayContaining(['node:fs', './wire.ts']));
      for (const specifier of specifiers)
        expect(specifier, `${file} imports ${specifier}`).toMatch(/^(\.\/[\w.-]+\.ts|node:[\w/]+)$/);
      graph.set(
        file,
        specifiers.filter((s) => s.startsWith('./')).map((s) => s.slice(2)),
      );
    }
    // No import circle, type-only imports included: each module can be read (and loaded) after what it needs.
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') expect.fail(`import circle: ${[...path, file].join(' → ')}`);
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of sources) visit(file, []);
    expect(graph.get('broker-client.ts')).toContain('app.ts');
  });

  it('builds to JavaScript and declarations of well under 5 MB', () => {
    const files = readdirSync(out);
    for (const name of ['index.js', 'index.d.ts', 'broker-client.js', 'app.js', 'wire.gen.d.ts'])
      expect(files).toContain(name);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    const bytes = bytesUnder(out) + statSync(join(SDK, 'package.json')).size;
    expect(bytes).toBeLessThan(MAX_INSTALLED_BYTES);
  });

  describe('in plain Node', () => {
    const seen: { method: string; url: string; sdk: string | undefined }[] = [];
    let server: Server;
    let url: string;
    const lease = (status: string) => ({
      id: 'l-1',
      status,
      reason: null,
      gpu: 'H100',
      count: 1,
      placement: 'any',
      allocations: [],
      usdPerHour: 2,
      createdAtMs: 1,
      readyAtMs: 2,
      endedAtMs: status === 'released' ? 3 : null,
      expiresAtMs: null,
    });

    beforeAll(async () => {
      // A stand-in broker: a lease is ready at once, and released when asked.
      server = createServer((request: IncomingMessage, response) => {
        seen.push({
          method: request.method ?? '',
          url: request.url ?? '',
          sdk: request.headers[SDK_VERSION_HEADER] as string | undefined,
        });
        response.writeHead(request.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(lease(request.method === 'DELETE' ? 'released' : 'ready')));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise((resolve) => server.close(resolve)));

    it('loads with no loader, sends its version, and takes and releases a lease', async () => {
      const script = `
        import { App, Broker, BrokerApiError, SDK_VERSION } from ${JSON.stringify(join(out, 'index.js'))};
        const broker = new Broker({ url: ${JSON.stringify(url)}, token: 'gpb_test' });
        const lease = await broker.gpus.request({ gpu: 'H100', count: 1 });
        const released = await lease.release();
        console.log(JSON.stringify({ ready: lease.status, released: released.status, version: SDK_VERSION,
          app: typeof App, error: typeof BrokerApiError }));`;
      // execFile, not the vitest worker, so no TypeScript loader is there.
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
        env: { PATH: process.env.PATH },
      });
      expect(JSON.parse(stdout)).toEqual({
        ready: 'ready',
        released: 'released',
        version: SDK_VERSION,
        app: 'function',
        error: 'function',
      });
      expect(seen).toEqual([
        { method: 'POST', url: '/v1/leases', sdk: SDK_VERSION },
        { method: 'DELETE', url: '/v1/leases/l-1', sdk: SDK_VERSION },
      ]);
    });
  });

  it('is what an app in this repository imports as gpubroker or @gpubroker/sdk, also in a gpubroker run bundle', async () => {
    mkdirSync(new URL('../tmp', import.meta.url), { recursive: true });
    const dir = mkdtempSync(new URL('../tmp/sdk-app-', import.meta.url).pathname);
    try {
      const file = join(dir, 'app.mjs');
      writeFileSync(
        file,
        [
          "import { App } from 'gpubroker';",
          "import { App as SdkApp } from '@gpubroker/sdk';",
          "export const app = new App('demo');",
          'export const same = App === SdkApp;',
        ].join('\n'),
      );
      const script = `const m = await import(${JSON.stringify(pathToFileURL(file).href)}); console.log(m.same);`;
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
      expect(stdout.trim()).toBe('true');
      const bundle = new TextDecoder().decode((await bundleModule(file)).code);
      expect(bundle).not.toMatch(/from\s*["'](gpubroker|@gpubroker\/sdk)["']/);
      expect(bundle).toContain(SDK_VERSION_HEADER);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
