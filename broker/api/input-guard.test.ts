/**
 * Input no route should see is refused in one place, as problem+json naming the field, and changes nothing: NUL
 * and lone surrogates in path, query and body, reserved keys, oversized bodies and URLs, broken encodings. The
 * CLIs that read JSON files refuse the same things with the same rules.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../lib/errors.ts';
import { parseJsonInput } from '../../lib/json-input.ts';
import { registerPlanCommand } from '../../solver/cli.ts';
import { readJsonObjectFile } from '../cli/versions.ts';
import { type RunningServer, startServer } from '../server.ts';
import { MAX_JSON_BODY_BYTES } from './input-guard.ts';

let server: RunningServer;
let operator: string;

beforeAll(async () => {
  server = await startServer({ port: 0, schedule: false });
  operator = (await server.broker.tokens.create('operator', 'operator')).token;
});
afterAll(() => server.close());

async function call(method: string, path: string, body?: string, contentType = 'application/json') {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${operator}`,
      ...(body !== undefined ? { 'content-type': contentType } : {}),
    },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await response.text();
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    body: text ? (JSON.parse(text) as { field?: string; detail?: string; version?: number }) : undefined,
  };
}

function expectProblem(
  result: Awaited<ReturnType<typeof call>>,
  status: number,
  field: string,
  detail: RegExp,
): void {
  expect(result.status).toBe(status);
  expect(result.contentType).toBe('application/problem+json');
  expect(result.body?.field).toBe(field);
  expect(result.body?.detail).toMatch(detail);
}

describe('text that cannot be stored', () => {
  it('in a path parameter is a 400 naming the parameter, for GET and DELETE', async () => {
    expectProblem(await call('GET', '/v1/leases/%00'), 400, 'id', /NUL/);
    expectProblem(await call('DELETE', '/v1/leases/abc%00def'), 400, 'id', /NUL/);
    expectProblem(await call('PUT', '/v1/tenants/%00/limits', '{}'), 400, 'name', /NUL/);
    expectProblem(await call('GET', '/v1/leases/%ED%A0%80'), 400, 'id', /surrogate|percent/);
    expectProblem(await call('GET', '/v1/leases/%E0%A4%A'), 400, 'id', /percent-encoding/);
  });

  it('in a query parameter is a 400 naming it', async () => {
    expectProblem(await call('GET', '/v1/usage?from=%00'), 400, 'from', /NUL/);
  });

  it('in a JSON body is a 400 naming the dotted path, and no lease is made', async () => {
    const before = await call('GET', '/v1/leases');
    expect(before.status).toBe(200);
    expectProblem(
      await call('POST', '/v1/leases', JSON.stringify({ gpu: 'H100', count: 1, idempotencyKey: 'a\u0000b' })),
      400,
      'idempotencyKey',
      /NUL/,
    );
    expectProblem(await call('POST', '/v1/leases', '{"gpu":"H1\\ud800","count":1}'), 400, 'gpu', /surrogate/);
    expectProblem(
      await call(
        'POST',
        '/v1/leases',
        JSON.stringify({ gpu: 'H100', count: 1, regions: ['us', 'e\u0000u'] }),
      ),
      400,
      'regions.1',
      /NUL/,
    );
    expect(await call('GET', '/v1/leases')).toEqual(before);
  });
});

describe('reserved keys', () => {
  it.each(['/v1/policy', '/v1/prices'])(
    'in PUT %s are a 400 naming the key, and no version is written',
    async (path) => {
      const before = await call('GET', path);
      expect(before.status).toBe(200);
      for (const body of [
        '{"__proto__":{"x":1}}',
        '{"buffer":{"constructor":{"gpus":1}}}',
        '{"prototype":1}',
      ]) {
        const result = await call('PUT', path, body);
        expect(result.status).toBe(400);
        expect(result.body?.detail).toMatch(/is a reserved key/);
        expect(result.body?.field).toMatch(/__proto__|constructor|prototype/);
      }
      expect((await call('GET', path)).body?.version).toBe(before.body?.version);
    },
  );
});

describe('size and shape', () => {
  it('a JSON body over the limit is a 413', async () => {
    const huge = JSON.stringify({ gpu: 'H100', count: 1, idempotencyKey: 'x'.repeat(MAX_JSON_BODY_BYTES) });
    expectProblem(await call('POST', '/v1/leases', huge), 413, 'body', /larger than/);
  });

  it('malformed JSON is a 400 naming the body', async () => {
    expectProblem(await call('POST', '/v1/leases', '{"gpu":'), 400, 'body', /not valid JSON/);
  });

  it('a URL over 16 KB is a 431 with a problem+json body', async () => {
    const answer = await new Promise<{ status: number; type: string | undefined; body: string }>(
      (resolve, reject) => {
        const req = httpRequest(`${server.url}/v1/leases/${'a'.repeat(20_000)}`, (res) => {
          let body = '';
          res.on('data', (chunk) => {
            body += chunk;
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }),
          );
        });
        req.on('error', reject);
        req.end();
      },
    );
    expect(answer.status).toBe(431);
    expect(answer.type).toBe('application/problem+json');
    expect(JSON.parse(answer.body)).toMatchObject({ status: 431, title: 'Request Header Fields Too Large' });
  });
});

describe('JSON files given to the CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gpubroker-json-'));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('refuse reserved keys and NUL with the key named (policy set, prices set)', () => {
    expect(() => readJsonObjectFile(file('proto.json', '{"__proto__":{"x":1}}'), 'the policy', '{}')).toThrow(
      /proto\.json\.__proto__: "__proto__" is a reserved key/,
    );
    expect(() => readJsonObjectFile(file('nul.json', '{"a":"\\u0000"}'), 'the price book', '{}')).toThrow(
      /nul\.json\.a: contains a NUL/,
    );
    expect(() => parseJsonInput('[[[[' + '1' + ']]]]', 'x')).not.toThrow();
    expect(() => parseJsonInput('['.repeat(100) + ']'.repeat(100), 'x')).toThrow(/deeper than/);
  });

  it('plan --policy refuses what policy set refuses, with the same field and message', async () => {
    const policy = file('cplex.json', '{"solver":{"backend":"cplex"}}');
    const program = new Command().exitOverride();
    registerPlanCommand(program);
    const error = await program
      .parseAsync(['node', 'gpubroker', 'plan', '--demand', 'H100:8@us', '--policy', policy])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe('policy.solver.backend');
    const api = await call('PUT', '/v1/policy', '{"solver":{"backend":"cplex"}}');
    expect(api.status).toBe(400);
    expect(api.body?.field).toBe('policy.solver.backend');
    expect(api.body?.detail).toBe((error as ValidationError).message);
  });
});

describe('a required JSON body', () => {
  it('sent without a JSON content type is a 415, and the policy is not reset to its defaults', async () => {
    const before = await call('GET', '/v1/policy');
    const response = await fetch(`${server.url}/v1/policy`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${operator}` },
    });
    expect(response.status).toBe(415);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(((await response.json()) as { field?: string }).field).toBe('body');
    expect((await call('GET', '/v1/policy')).body?.version).toBe(before.body?.version);
  });
});

describe('requests Node or the adapter cannot read', () => {
  it('a request without Host is served; a malformed one is a 400 problem naming the request', async () => {
    const { port } = new URL(server.url);
    const raw = (text: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.end(text));
        let answer = '';
        socket.on('data', (chunk) => {
          answer += chunk;
        });
        socket.on('end', () => resolve(answer));
        socket.on('error', reject);
      });
    expect(await raw('GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1.1 200/);
    const garbage = await raw('NOT A REQUEST\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1.1 400/);
    expect(JSON.parse(garbage.slice(garbage.indexOf('\r\n\r\n') + 4))).toMatchObject({
      status: 400,
      field: 'request',
    });
  });
});
