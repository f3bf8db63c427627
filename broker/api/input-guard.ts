/**
 * One gate for input no route should see: path and query parameters and JSON bodies holding text PostgreSQL
 * cannot store (NUL, lone surrogates) or reserved object keys (`__proto__`, …; see lib/json-input.ts), malformed
 * percent-encoding, and JSON bodies over the size limit. Each is a 400 (413 for size) problem+json naming the
 * parameter or the body's dotted path, before any validator or handler runs, so nothing is written.
 */
import type { MiddlewareHandler } from 'hono';
import { findJsonInputProblem, unstorableText } from '../../lib/json-input.ts';
import { HttpProblem } from './problem.ts';

/** The largest JSON body any route takes (a policy or price book is a few KB; a lease request far less). */
export const MAX_JSON_BODY_BYTES = 1_048_576;

/** A route as the guard needs it: its pattern (`/v1/leases/:id`) and whether it takes a required JSON body. */
export interface GuardedRoute {
  readonly method: string;
  readonly path: string;
  readonly jsonBodyRequired?: boolean;
}

/** `routes`: the app's routes, to name a bad path segment by its parameter and to know which need a body. */
export function inputGuard(routes: () => readonly GuardedRoute[]): MiddlewareHandler {
  return async (c, next) => {
    const url = new URL(c.req.url);
    checkPath(url.pathname, routes());
    checkQuery(url.search);
    const json = isJson(c.req.header('content-type'));
    // Without a JSON content type a validator sees no body and would validate `{}`: a PUT of nothing would write
    // every default.
    if (!json && needsJsonBody(c.req.method, url.pathname, routes()))
      throw new HttpProblem(
        415,
        'Unsupported media type',
        'body: this route takes a JSON body; send it with Content-Type: application/json',
        'body',
      );
    if (json && c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const length = Number(c.req.header('content-length') ?? 0);
      if (length > MAX_JSON_BODY_BYTES) throw tooLarge();
      const text = await c.req.text();
      if (text.length > MAX_JSON_BODY_BYTES) throw tooLarge();
      // An empty body is the route's to judge (a DELETE sent with a JSON content type carries none).
      if (text.trim() === '') return next();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new HttpProblem(400, 'Invalid request', 'body: is not valid JSON', 'body');
      }
      const problem = findJsonInputProblem(body);
      if (problem) {
        const field = problem.path || 'body';
        throw new HttpProblem(400, 'Invalid request', `${field}: ${problem.problem}`, field);
      }
    }
    await next();
  };
}

function checkPath(pathname: string, routes: readonly { readonly path: string }[]): void {
  const segments = pathname.split('/');
  for (const [index, raw] of segments.entries()) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      const field = parameterAt(segments, index, routes);
      throw new HttpProblem(400, 'Invalid request', `${field}: malformed percent-encoding`, field);
    }
    const problem = unstorableText(segment);
    if (problem) {
      const field = parameterAt(segments, index, routes);
      throw new HttpProblem(400, 'Invalid request', `${field}: ${problem}`, field);
    }
  }
}

function checkQuery(search: string): void {
  for (const pair of search.replace(/^\?/, '').split('&')) {
    if (pair === '') continue;
    const [rawKey = '', rawValue = ''] = pair.split(/=(.*)/s);
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
      value = decodeURIComponent(rawValue.replace(/\+/g, ' '));
    } catch {
      throw new HttpProblem(
        400,
        'Invalid request',
        `query: malformed percent-encoding in "${pair.slice(0, 40)}"`,
        'query',
      );
    }
    const problem = unstorableText(key) ?? unstorableText(value);
    if (problem) {
      const field = unstorableText(key) ? 'query' : key;
      throw new HttpProblem(400, 'Invalid request', `${field}: ${problem}`, field);
    }
  }
}

/** The name of the path parameter at `index` (`id` of `/v1/leases/:id`), or `path` when no route names it. */
function parameterAt(
  segments: readonly string[],
  index: number,
  routes: readonly { readonly path: string }[],
): string {
  for (const route of routes) {
    const pattern = route.path.split('/');
    if (pattern.length !== segments.length) continue;
    const matches = pattern.every((part, i) => part.startsWith(':') || i === index || part === segments[i]);
    const name = pattern[index];
    if (matches && name?.startsWith(':')) return name.slice(1).replace(/\{.*$/, '');
  }
  return 'path';
}

function needsJsonBody(method: string, pathname: string, routes: readonly GuardedRoute[]): boolean {
  const segments = pathname.split('/');
  return routes.some((route) => {
    if (!route.jsonBodyRequired || route.method !== method) return false;
    const pattern = route.path.split('/');
    return (
      pattern.length === segments.length &&
      pattern.every((part, i) => part.startsWith(':') || part === segments[i])
    );
  });
}

function isJson(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/(?:[\w.+-]+\+)?json\b/i.test(contentType.trim());
}

function tooLarge(): HttpProblem {
  return new HttpProblem(413, 'Payload too large', `body: larger than ${MAX_JSON_BODY_BYTES} bytes`, 'body');
}
