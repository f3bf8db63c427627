/**
 * The HTTP transport every part of the SDK shares: where the broker is, the token, the clock waits use, and one typed
 * request per route of the wire contract. `Broker` (leases, billing, apps) and `App` (function calls) both speak
 * through it, so neither needs the other.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Clock, realClock } from './clock.ts';
import { SDK_VERSION, SDK_VERSION_HEADER } from './version.ts';
import {
  type Answer,
  type Method,
  type PathOf,
  type RequestArgs,
  requestPath,
  type Schemas,
} from './wire.ts';

/** An error answer of the API (RFC 9457 problem+json); `field` names the request field that was wrong. */
export type Problem = Schemas['Problem'];

export interface BrokerClientOptions {
  /** Default: `GPUBROKER_URL`, then `http://127.0.0.1:8787`. */
  readonly url?: string;
  /** Default: `GPUBROKER_TOKEN`, then `.gpubroker/operator-token` in the working directory. */
  readonly token?: string;
  readonly clock?: Clock;
}

/** An error answer of the API (its problem+json body). */
export class BrokerApiError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.title} (${problem.status}): ${problem.detail}`);
    this.name = 'BrokerApiError';
  }
  get status(): number {
    return this.problem.status;
  }
  get field(): string | undefined {
    return this.problem.field;
  }
}

export class ApiClient {
  readonly url: string;
  /** The bearer token sent with every call (for streaming and upload requests made outside `call`). */
  readonly token: string | undefined;
  /** The clock this client waits on (lease waits, call results). */
  readonly clock: Clock;

  constructor(options: BrokerClientOptions = {}) {
    this.url = (options.url ?? process.env.GPUBROKER_URL ?? 'http://127.0.0.1:8787').replace(/\/+$/, '');
    this.token = options.token ?? process.env.GPUBROKER_TOKEN ?? localOperatorToken();
    this.clock = options.clock ?? realClock;
  }

  /**
   * Any route of the API, typed by the wire contract: `params` fill the path, `query` and `body` are checked
   * against the route, and the answer has the route's type. Error answers become BrokerApiError.
   */
  api<M extends Method, P extends PathOf<M>>(
    method: M,
    path: P,
    ...[parts]: RequestArgs<M, P>
  ): Promise<Answer<M, P>> {
    const target = requestPath(
      path,
      parts?.params as Record<string, string> | undefined,
      parts?.query as Record<string, unknown> | undefined,
    );
    return this.call<Answer<M, P>>(method.toUpperCase(), target, parts?.body);
  }

  /** One API call, untyped (see `api` for typed ones); problem+json answers become BrokerApiError. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.fetch(path, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' } }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new BrokerApiError(problemOf(response, text));
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * A raw request to the broker with this client's version and token (uploads, streams); the caller reads the answer.
   * `checked` turns an error answer into BrokerApiError and leaves the body unread otherwise.
   */
  async fetch(path: string, init: RequestInit & { checked?: boolean } = {}): Promise<Response> {
    const { checked, headers, ...rest } = init;
    const response = await fetch(`${this.url}${path}`, {
      ...rest,
      headers: {
        [SDK_VERSION_HEADER]: SDK_VERSION,
        ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
        ...(headers as Record<string, string> | undefined),
      },
    });
    if (checked && !response.ok) throw new BrokerApiError(problemOf(response, await response.text()));
    return response;
  }
}

function localOperatorToken(): string | undefined {
  const file = join(process.cwd(), '.gpubroker', 'operator-token');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/** The problem+json of an error answer; a body that is not one (a proxy's page, nothing) becomes a generic problem. */
export function problemOf(response: Response, text: string): Problem {
  try {
    const body = JSON.parse(text) as Partial<Problem> | null;
    if (typeof body?.title === 'string' && typeof body.detail === 'string')
      return {
        type: 'about:blank',
        ...body,
        title: body.title,
        detail: body.detail,
        status: response.status,
      };
  } catch {
    // not JSON: described below
  }
  return {
    type: 'about:blank',
    title: response.statusText || `HTTP ${response.status}`,
    status: response.status,
    detail: text.trim().slice(0, 200) || 'the answer had no body',
  };
}
