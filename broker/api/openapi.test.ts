/**
 * The OpenAPI document at `/openapi.json` describes every route the app serves, no more and no fewer, and passes
 * Redocly's recommended rules with no error and no warning.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BrokerCore } from '../broker.ts';
import { PAGES } from '../console/layout.ts';
import { createApp } from './app.ts';
import { BEARER } from './route-docs.ts';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

interface Operation {
  security?: Record<string, string[]>[];
}
interface Document {
  openapi: string;
  security?: Record<string, string[]>[];
  paths: Record<string, Record<string, Operation>>;
}

/**
 * Stands in for the broker: routes and the document are declared without calling it, and no request here reaches
 * a handler that does. Every property is another stand-in, callable, and not a promise.
 */
function standIn(): BrokerCore {
  const make = (): unknown =>
    new Proxy(() => make(), {
      get: (_target, key) => (key === 'then' ? undefined : make()),
    });
  return make() as BrokerCore;
}

const app = createApp(standIn());
const CONSOLE_PATHS = ['/', '/login', '/logout', '/console', ...Object.values(PAGES).map((p) => p.path)];
let doc: Document;
beforeAll(async () => {
  const response = await app.request('/openapi.json');
  expect(response.status).toBe(200);
  doc = (await response.json()) as Document;
});

/** `METHOD /path` of every route the app serves, in the document's spelling (`{param}`). */
function servedRoutes(): string[] {
  const routes = app.routes
    // The agents' WebSocket (a protocol upgrade, not an operation OpenAPI can describe: agent/protocol.ts).
    .filter((r) => r.method !== 'ALL' && r.path !== '/openapi.json' && r.path !== '/v1/agent/connect')
    // The console's HTML pages (broker/console), which are not API operations.
    .filter((r) => !CONSOLE_PATHS.some((prefix) => r.path === prefix || r.path.startsWith(`${prefix}/`)))
    .map((r) => `${r.method.toUpperCase()} ${r.path.replace(/:(\w+)(\{[^}]*\})?/g, '{$1}')}`);
  return [...new Set(routes)].sort();
}

function documentedRoutes(): string[] {
  return Object.entries(doc.paths)
    .flatMap(([path, item]) =>
      Object.keys(item)
        .filter((key) => METHODS.includes(key))
        .map((method) => `${method.toUpperCase()} ${path}`),
    )
    .sort();
}

describe('the OpenAPI document', () => {
  it('describes exactly the routes the app serves', () => {
    const served = servedRoutes();
    const documented = documentedRoutes();
    expect(served.length).toBeGreaterThan(25);
    expect({
      servedButUndocumented: served.filter((r) => !documented.includes(r)),
      documentedButNotServed: documented.filter((r) => !served.includes(r)),
    }).toEqual({ servedButUndocumented: [], documentedButNotServed: [] });
  });

  it('asks for the bearer token on every /v1 route and on no other', () => {
    const bearer = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([method]) => METHODS.includes(method))
        .map(([method, operation]) => {
          const security = operation.security ?? doc.security ?? [];
          return [`${method.toUpperCase()} ${path}`, security.some((s) => BEARER in s)] as const;
        }),
    );
    expect(bearer.filter(([route, secured]) => secured !== route.split(' ')[1]?.startsWith('/v1/'))).toEqual(
      [],
    );
  });

  it("passes Redocly's recommended rules with no problem", { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpubroker-openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      writeFileSync(file, JSON.stringify(doc, null, 2));
      const cli = join(process.cwd(), 'node_modules/@redocly/cli/bin/cli.js');
      // Run in the temporary folder with the recommended rules named: no configuration file can change them.
      const run = await promisify(execFile)(
        process.execPath,
        [cli, 'lint', '--format=json', '--extends=recommended', '--max-problems=1000', file],
        {
          cwd: dir,
          env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
          maxBuffer: 64 * 1024 * 1024,
        },
      ).catch((error: { stdout?: string; stderr?: string }) => ({
        stdout: error.stdout ?? '',
        stderr: error.stderr ?? '',
      }));
      let report: {
        totals: { errors: number; warnings: number };
        problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[];
      };
      try {
        report = JSON.parse(run.stdout);
      } catch {
        throw new Error(`redocly printed no JSON report:\n${run.stdout}\n${run.stderr}`);
      }
      const problems = report.problems.map(
        (p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location.map((l) => l.pointer).join(', ')}`,
      );
      expect(problems).toEqual([]);
      expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
