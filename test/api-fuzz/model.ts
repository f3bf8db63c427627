/**
 * The API as the OpenAPI document describes it: every operation with its method, path template, parameters,
 * request body and documented responses, and whether it needs a token and the operator role. The fuzz takes all of
 * it from `/openapi.json`, so a route added to the app (and, as openapi.test.ts enforces, to the document) is fuzzed
 * without touching the fuzz.
 */
import { deref, type JsonSchema, type Resolve, resolverFor } from './schema.ts';

export interface Parameter {
  readonly name: string;
  readonly in: 'path' | 'query' | 'header' | 'cookie';
  readonly required: boolean;
  readonly schema: JsonSchema;
}

export interface Operation {
  readonly id: string;
  readonly method: string;
  /** The template, `/v1/leases/{id}`. */
  readonly path: string;
  readonly summary: string;
  readonly parameters: readonly Parameter[];
  /** Content type → schema, when the operation takes a body. */
  readonly body:
    | { readonly required: boolean; readonly content: Readonly<Record<string, JsonSchema>> }
    | undefined;
  /** Status (`200`, `4XX`) → content type → schema. */
  readonly responses: Readonly<Record<string, Readonly<Record<string, JsonSchema | undefined>>>>;
  /** Needs `Authorization: Bearer` (security not emptied on the operation). */
  readonly secured: boolean;
  /** The summary says `(operator)`: a tenant's token gets 403. */
  readonly operatorOnly: boolean;
  /** Not GET or HEAD: may change state. */
  readonly write: boolean;
}

export interface ApiModel {
  readonly operations: readonly Operation[];
  readonly resolve: Resolve;
  /** Every path template with the methods documented on it. */
  readonly methodsByPath: ReadonlyMap<string, readonly string[]>;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

interface RawOperation {
  operationId?: string;
  summary?: string;
  parameters?: { name: string; in: Parameter['in']; required?: boolean; schema?: JsonSchema }[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: JsonSchema }> };
  responses?: Record<string, { content?: Record<string, { schema?: JsonSchema }> }>;
  security?: unknown[];
}

interface RawDocument {
  security?: unknown[];
  paths: Record<string, Record<string, RawOperation>>;
}

export function apiModel(document: unknown): ApiModel {
  const doc = document as RawDocument;
  const resolve = resolverFor(document);
  const operations: Operation[] = [];
  const methodsByPath = new Map<string, string[]>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [key, raw] of Object.entries(item)) {
      if (!METHODS.includes(key)) continue;
      const method = key.toUpperCase();
      methodsByPath.set(path, [...(methodsByPath.get(path) ?? []), method]);
      const security = raw.security ?? doc.security ?? [];
      operations.push({
        id: raw.operationId ?? `${method} ${path}`,
        method,
        path,
        summary: raw.summary ?? '',
        parameters: (raw.parameters ?? []).map((p) => ({
          name: p.name,
          in: p.in,
          required: p.required ?? p.in === 'path',
          schema: deref(p.schema ?? {}, resolve),
        })),
        body: raw.requestBody
          ? {
              required: raw.requestBody.required ?? false,
              content: Object.fromEntries(
                Object.entries(raw.requestBody.content ?? {}).map(([type, media]) => [
                  type,
                  media.schema ?? {},
                ]),
              ),
            }
          : undefined,
        responses: Object.fromEntries(
          Object.entries(raw.responses ?? {}).map(([status, response]) => [
            status,
            Object.fromEntries(
              Object.entries(response.content ?? {}).map(([type, media]) => [type, media.schema]),
            ),
          ]),
        ),
        secured: security.length > 0,
        operatorOnly: /\(operator\)/.test(raw.summary ?? ''),
        write: method !== 'GET' && method !== 'HEAD',
      });
    }
  }
  return { operations, resolve, methodsByPath };
}

/** The documented response for `status` (exact, then `4XX`-style, then `default`). */
export function documentedResponse(
  operation: Operation,
  status: number,
): Readonly<Record<string, JsonSchema | undefined>> | undefined {
  return (
    operation.responses[String(status)] ??
    operation.responses[`${String(status)[0]}XX`] ??
    operation.responses.default
  );
}
