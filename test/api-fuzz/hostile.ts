/**
 * Requests outside the document: methods and paths it does not list (they must get a 4xx problem, never a 2xx
 * write), and raw bytes on a socket for what `fetch` will not send: request lines and headers over 16 KB, malformed
 * request lines and headers, conflicting framing (Content-Length and Transfer-Encoding), pipelining, bodies on GET,
 * unnormalised dot segments and non-ASCII header bytes.
 */
import fc from 'fast-check';
import { anyJson, ODD_TEXT } from './arbitraries.ts';
import type { Case, Principal, World } from './cases.ts';
import type { ApiModel } from './model.ts';

const OTHER_METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
const ODD_PATHS = [
  '/',
  '/v1',
  '/v1/',
  '/V1/leases',
  '/v1//leases',
  '/v1/leases/',
  '/v1/leases/%2e%2e/policy',
  '/v1/apps/a/functions//calls',
  '/v1/invoices/2026-11/close/',
  '/openapi.json/x',
  '/healthz/',
  '/healthz%00',
  '/metrics?x=%00',
  '/v1/leases;x=1',
  '/v1/%ZZ',
  '/v1/leases%2F1',
  '/v2/leases',
  '/admin',
  '/.env',
  '/v1/tokens/../policy',
];

/** A request to a documented path with a method the document does not list there, or to no documented path. */
export function undocumentedCase(model: ApiModel, world: World): fc.Arbitrary<Case> {
  const documented = [...model.methodsByPath.entries()];
  const wrongMethod = fc.constantFrom(...documented).chain(([template, methods]) =>
    fc.constantFrom(...OTHER_METHODS.filter((m) => !methods.includes(m))).map((method) => ({
      method,
      path: template.replace(/\{\w+\}/g, 'x'),
      documentedGet: methods.includes('GET'),
    })),
  );
  const oddPath = fc
    .tuple(fc.constantFrom(...OTHER_METHODS), fc.constantFrom(...ODD_PATHS))
    .map(([method, path]) => ({ method, path, documentedGet: false }));
  return fc
    .tuple(fc.oneof(wrongMethod, oddPath), fc.constantFrom(world.operator, world.tenant, undefined), anyJson)
    .map(([{ method, path, documentedGet }, principal, body]) => {
      const hasBody = method !== 'GET' && method !== 'HEAD';
      // HEAD of a GET route is GET without the body; OPTIONS and HEAD change nothing either way.
      const expect =
        method === 'HEAD' && documentedGet
          ? 'valid'
          : method === 'OPTIONS' || method === 'HEAD'
            ? 'unknown'
            : 'invalid';
      return {
        op: 'undocumented',
        transport: 'fetch' as const,
        method,
        target: path,
        headers: {
          ...(principal ? { authorization: `Bearer ${principal.token}` } : {}),
          ...(hasBody ? { 'content-type': 'application/json' } : {}),
        },
        body: hasBody ? JSON.stringify(body) : undefined,
        principal: principal?.kind ?? 'none',
        expect,
        why: `${method} ${path} is not in the document`,
        write: method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS',
        stream: false,
        owners: [],
      } satisfies Case;
    });
}

const CRLF = '\r\n';

function request(lines: string[], body = ''): string {
  return `${lines.join(CRLF)}${CRLF}${CRLF}${body}`;
}

interface RawRecipe {
  what: string;
  text: (auth: string) => string | Buffer;
  /** The answer must be a problem+json (the server parsed enough to answer). */
  expectProblem: boolean;
  /** Could change state if misread (a write smuggled or framed oddly). */
  write: boolean;
}

const HOST = 'Host: 127.0.0.1';

function rawRecipes(): fc.Arbitrary<RawRecipe> {
  const longUrl = fc.integer({ min: 16_500, max: 40_000 }).map(
    (n): RawRecipe => ({
      what: `URL of ${n} bytes`,
      text: (auth) => request([`GET /v1/leases?pad=${'a'.repeat(n)} HTTP/1.1`, HOST, auth]),
      expectProblem: true,
      write: false,
    }),
  );
  const longHeader = fc.integer({ min: 16_500, max: 40_000 }).map(
    (n): RawRecipe => ({
      what: `header of ${n} bytes`,
      text: (auth) => request(['GET /v1/leases HTTP/1.1', HOST, auth, `X-Pad: ${'b'.repeat(n)}`]),
      expectProblem: true,
      write: false,
    }),
  );
  const longWriteUrl = fc.integer({ min: 16_500, max: 20_000 }).map(
    (n): RawRecipe => ({
      what: `PUT with a URL of ${n} bytes`,
      text: (auth) =>
        request(
          [
            `PUT /v1/apps/${'a'.repeat(n)} HTTP/1.1`,
            HOST,
            auth,
            'Content-Type: application/json',
            'Content-Length: 2',
          ],
          '{}',
        ),
      expectProblem: true,
      write: true,
    }),
  );
  const fixed: RawRecipe[] = [
    { what: 'garbage request line', text: () => `GARBAGE${CRLF}${CRLF}`, expectProblem: true, write: false },
    {
      what: 'HTTP/9.9',
      text: (a) => request(['GET /v1/leases HTTP/9.9', HOST, a]),
      expectProblem: true,
      write: false,
    },
    { what: 'no version', text: () => `GET /v1/leases${CRLF}${CRLF}`, expectProblem: false, write: false },
    {
      what: 'binary junk',
      text: () => Buffer.from([0, 1, 2, 255, 254, 13, 10, 13, 10]),
      expectProblem: true,
      write: false,
    },
    {
      what: 'non-numeric Content-Length',
      text: (a) => request(['POST /v1/leases HTTP/1.1', HOST, a, 'Content-Length: abc'], '{}'),
      expectProblem: true,
      write: true,
    },
    {
      what: 'two different Content-Lengths',
      text: (a) =>
        request(
          [
            'POST /v1/tokens HTTP/1.1',
            HOST,
            a,
            'Content-Type: application/json',
            'Content-Length: 2',
            'Content-Length: 18',
          ],
          '{"tenant":"smugg"}',
        ),
      expectProblem: true,
      write: true,
    },
    {
      what: 'Content-Length with Transfer-Encoding (smuggling)',
      text: (a) => {
        const inner = request(
          ['POST /v1/tokens HTTP/1.1', HOST, a, 'Content-Type: application/json', 'Content-Length: 21'],
          '{"tenant":"smuggled"}',
        );
        return request(
          [
            'POST /v1/leases HTTP/1.1',
            HOST,
            a,
            'Content-Type: application/json',
            'Content-Length: 4',
            'Transfer-Encoding: chunked',
          ],
          `0${CRLF}${CRLF}${inner}`,
        );
      },
      expectProblem: true,
      write: true,
    },
    {
      what: 'bad chunk size',
      text: (a) =>
        request(
          [
            'PUT /v1/policy HTTP/1.1',
            HOST,
            a,
            'Content-Type: application/json',
            'Transfer-Encoding: chunked',
          ],
          `zz${CRLF}{}${CRLF}0${CRLF}${CRLF}`,
        ),
      expectProblem: true,
      write: true,
    },
    {
      what: 'chunked JSON body',
      text: (a) =>
        request(
          [
            'PUT /v1/prices HTTP/1.1',
            HOST,
            a,
            'Content-Type: application/json',
            'Transfer-Encoding: chunked',
          ],
          `2${CRLF}{}${CRLF}0${CRLF}${CRLF}`,
        ),
      expectProblem: false,
      write: true,
    },
    {
      what: 'header without colon',
      text: (a) => request(['GET /v1/leases HTTP/1.1', HOST, a, 'NoColonHere']),
      expectProblem: true,
      write: false,
    },
    {
      what: 'space in header name',
      text: (a) => request(['GET /v1/leases HTTP/1.1', HOST, a, 'Bad Name: x']),
      expectProblem: true,
      write: false,
    },
    {
      what: 'obs-fold header',
      text: (a) => request(['GET /v1/leases HTTP/1.1', HOST, a, 'X-A: 1', ' folded']),
      expectProblem: true,
      write: false,
    },
    {
      what: 'NUL in a header value',
      text: (a) => request(['GET /v1/leases HTTP/1.1', HOST, a, 'X-A: a\u0000b']),
      expectProblem: true,
      write: false,
    },
    {
      what: 'UTF-8 in the Authorization header',
      text: () => Buffer.from(request(['GET /v1/leases HTTP/1.1', HOST, 'Authorization: Bearer gpb_é😀'])),
      expectProblem: true,
      write: false,
    },
    {
      what: 'LF-only line ends',
      text: (a) => `GET /v1/leases HTTP/1.1\n${HOST}\n${a}\n\n`,
      expectProblem: false,
      write: false,
    },
    {
      what: 'absolute-form target',
      text: (a) => request(['GET http://evil.example/v1/leases HTTP/1.1', HOST, a]),
      expectProblem: false,
      write: false,
    },
    {
      what: 'asterisk target',
      text: (a) => request(['GET * HTTP/1.1', HOST, a]),
      expectProblem: false,
      write: false,
    },
    {
      what: 'CONNECT',
      text: (a) => request(['CONNECT 127.0.0.1:1 HTTP/1.1', HOST, a]),
      expectProblem: false,
      write: false,
    },
    {
      what: 'unknown method',
      text: (a) => request(['FOO /v1/leases HTTP/1.1', HOST, a]),
      expectProblem: true,
      write: false,
    },
    {
      what: 'lower-case method',
      text: (a) => request(['get /v1/leases HTTP/1.1', HOST, a]),
      expectProblem: true,
      write: false,
    },
    {
      what: 'no Host',
      text: (a) => request(['GET /v1/leases HTTP/1.1', a]),
      expectProblem: false,
      write: false,
    },
    {
      what: 'HTTP/1.0',
      text: (a) => request(['GET /v1/policy HTTP/1.0', a]),
      expectProblem: false,
      write: false,
    },
    {
      what: 'unnormalised dot segments',
      text: (a) => request(['DELETE /v1/leases/../policy HTTP/1.1', HOST, a]),
      expectProblem: false,
      write: true,
    },
    {
      what: 'GET with a JSON body',
      text: (a) =>
        request(
          ['GET /v1/leases HTTP/1.1', HOST, a, 'Content-Type: application/json', 'Content-Length: 11'],
          '{"a":"\\u0000"}'.slice(0, 11),
        ),
      expectProblem: false,
      write: false,
    },
    {
      what: 'pipelined writes, the second invalid',
      text: (a) =>
        request(['GET /v1/policy HTTP/1.1', HOST, a]) +
        request(
          ['PUT /v1/policy HTTP/1.1', HOST, a, 'Content-Type: application/json', 'Content-Length: 17'],
          '{"__proto__":{}}x',
        ),
      expectProblem: false,
      write: true,
    },
    {
      what: 'short body, then the connection half-closed',
      text: (a) =>
        request(
          ['PUT /v1/policy HTTP/1.1', HOST, a, 'Content-Type: application/json', 'Content-Length: 100'],
          '{"spotMaxShare":',
        ),
      expectProblem: false,
      write: true,
    },
    {
      what: 'Expect: 100-continue',
      text: (a) =>
        request(
          [
            'PUT /v1/prices HTTP/1.1',
            HOST,
            a,
            'Content-Type: application/json',
            'Content-Length: 2',
            'Expect: 100-continue',
          ],
          '{}',
        ),
      expectProblem: false,
      write: true,
    },
    {
      what: 'odd text in the target',
      text: (a) => Buffer.from(request([`GET /v1/leases/${ODD_TEXT[1]} HTTP/1.1`, HOST, a])),
      expectProblem: false,
      write: false,
    },
  ];
  return fc.oneof(
    { weight: 3, arbitrary: longUrl },
    { weight: 1, arbitrary: longHeader },
    { weight: 1, arbitrary: longWriteUrl },
    { weight: 8, arbitrary: fc.constantFrom(...fixed) },
  );
}

/** A raw request over a socket, authenticated as the operator (so that a misread write would take effect). */
export function rawCase(operator: Principal): fc.Arbitrary<Case> {
  return rawRecipes().map((recipe) => {
    const text = recipe.text(`Authorization: Bearer ${operator.token}`);
    const raw = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
    const firstLine = raw
      .subarray(0, Math.min(raw.indexOf(10) >= 0 ? raw.indexOf(10) : 80, 120))
      .toString('latin1');
    const [method = '?', target = '?'] = firstLine.trim().split(' ');
    return {
      op: `raw:${recipe.what}`,
      transport: 'socket' as const,
      method,
      target: target.length > 200 ? `${target.slice(0, 200)}… (${target.length} bytes)` : target,
      headers: {},
      body: undefined,
      raw,
      principal: 'operator' as const,
      expect: recipe.expectProblem ? 'invalid' : 'unknown',
      why: recipe.what,
      write: recipe.write,
      stream: false,
      owners: [],
    } satisfies Case;
  });
}
