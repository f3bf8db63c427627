/**
 * The broker's HTTP API as types, for `Broker.api`: each route's path parameters, query, JSON body and JSON answer,
 * read from wire.gen.ts, which `npm run generate:wire` writes from the broker's own OpenAPI document (the zod
 * schemas of broker/api). So the SDK's types are the wire contract's, and the SDK package needs neither zod nor hono.
 *
 *   await broker.api('get', '/v1/leases/{id}', { params: { id } });          // Promise<Lease>
 *   await broker.api('post', '/v1/leases', { body: { gpu: 'H100', count: 8 } });
 *
 * Our own few lines instead of openapi-fetch: the SDK stays free of dependencies (it installs offline and
 * weighs what its own code weighs), an error answer is thrown as a BrokerApiError carrying the problem+json rather
 * than returned as `{ error }`, and one `call` adds the token and the version header to every request.
 */
import type { components, paths } from './wire.gen.ts';

export type { components, paths };

/** Every named schema of the API (`Schemas['Lease']`, `Schemas['Problem']`, …). */
export type Schemas = components['schemas'];

export type Method = 'get' | 'put' | 'post' | 'delete';

/** The paths that have an operation for `M`. */
export type PathOf<M extends Method> = {
  [P in keyof paths]: paths[P] extends { [K in M]: unknown } ? P : never;
}[keyof paths];

type Operation<M extends Method, P extends PathOf<M>> = paths[P][M & keyof paths[P]];
type ParametersOf<O> = O extends { parameters: infer T } ? T : Record<never, never>;

type PathPart<O> =
  ParametersOf<O> extends { path: infer T } ? { readonly params: T } : { readonly params?: undefined };
type QueryPart<O> = 'query' extends keyof ParametersOf<O>
  ? { readonly query?: ParametersOf<O>['query' & keyof ParametersOf<O>] }
  : { readonly query?: undefined };
type BodyPart<O> = O extends { requestBody?: { content: { 'application/json': infer B } } }
  ? 'requestBody' extends RequiredKeys<O>
    ? { readonly body: B }
    : { readonly body?: B }
  : { readonly body?: undefined };
type RequiredKeys<T> = { [K in keyof T]-?: Record<never, never> extends Pick<T, K> ? never : K }[keyof T];

/** What a request carries besides its method and path: `params` (the path's), `query`, `body` (JSON). */
export type RequestParts<M extends Method, P extends PathOf<M>> = PathPart<Operation<M, P>> &
  QueryPart<Operation<M, P>> &
  BodyPart<Operation<M, P>>;

/** `[parts]`, optional when nothing in it is required. */
export type RequestArgs<M extends Method, P extends PathOf<M>> =
  Record<never, never> extends RequestParts<M, P>
    ? [parts?: RequestParts<M, P>]
    : [parts: RequestParts<M, P>];

type JsonOf<R> = R extends { content: { 'application/json': infer T } } ? T : never;

/** The JSON of the route's success answers. */
export type Answer<M extends Method, P extends PathOf<M>> =
  Operation<M, P> extends { responses: infer R }
    ? { [S in keyof R]: S extends 200 | 201 | 202 ? JsonOf<R[S]> : never }[keyof R]
    : never;

/** `/v1/leases/{id}` with `{ id }` filled in (encoded), and `?a=1&b=2` of the defined query values. */
export function requestPath(
  path: string,
  params: Readonly<Record<string, string | number>> | undefined,
  query: Readonly<Record<string, unknown>> | undefined,
): string {
  const filled = path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params?.[name];
    if (value === undefined) throw new TypeError(`${path}: no value for the path parameter ${name}`);
    return encodeURIComponent(String(value));
  });
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {}))
    if (value !== undefined && value !== null)
      search.set(name, value instanceof Date ? value.toISOString() : String(value));
  const text = search.toString();
  return text ? `${filled}?${text}` : filled;
}
