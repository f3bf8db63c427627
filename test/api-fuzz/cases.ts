/**
 * Request cases: for one operation of the document, a concrete HTTP request (method, encoded path and query,
 * headers, body) together with what the fuzz knows about it: `invalid` (the document, the token or the API's
 * text rules refuse it, so it must get a 4xx and change nothing), `valid`, or `unknown`. The expectation is worked
 * out from the request as sent (the body text is parsed again and checked against the schema), never from the
 * mutation's intent, so that a mutation that happens to produce a valid request is not miscounted.
 */

import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import {
  anyJson,
  type Caps,
  deeplyNested,
  type GenContext,
  type Hints,
  invalidValue,
  NUMBER_TOKENS,
  ODD_TEXT,
  storableString,
  UNSTORABLE_TEXT,
  validValue,
} from './arbitraries.ts';
import type { ApiModel, Operation, Parameter } from './model.ts';
import { type JsonSchema, textRuleViolation, unstorable, violation } from './schema.ts';

export type PrincipalKind = 'none' | 'malformed' | 'unknown' | 'tenant' | 'tenant2' | 'operator' | 'fresh';

export interface Principal {
  readonly kind: PrincipalKind;
  readonly token: string | undefined;
  readonly tenantId: string | undefined;
  readonly tenantName: string | undefined;
  readonly role: 'tenant' | 'operator' | undefined;
}

/** Something a tenant owns, learnt from a 2xx answer. */
export interface Owned {
  readonly id: string;
  readonly tenantId: string;
}

/** What the fuzz has learnt about the broker so far: tokens and the ids its answers handed out. */
export interface World {
  readonly operator: Principal;
  readonly tenant: Principal;
  readonly tenant2: Principal;
  readonly fresh: Principal[];
  readonly leases: Owned[];
  readonly calls: Owned[];
  readonly apps: (Owned & { functions: string[] })[];
  readonly bundles: Owned[];
  readonly tenants: string[];
  /** GPU types, vendors and regions of the broker's offerings. */
  readonly catalog: { gpus: string[]; vendors: string[]; regions: string[] };
}

export type Expectation = 'valid' | 'invalid' | 'unknown';

export interface Case {
  /** operationId, or `undocumented`, or `raw:<what>`. */
  readonly op: string;
  readonly transport: 'fetch' | 'socket';
  readonly method: string;
  /** Path and query as sent (percent-encoded). */
  readonly target: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | Uint8Array | undefined;
  /** The whole request, for `socket`. */
  readonly raw?: Buffer;
  readonly principal: PrincipalKind;
  readonly expect: Expectation;
  /** Why it is invalid (or what was mutated). */
  readonly why: string;
  readonly write: boolean;
  /** An NDJSON stream: read the head, then hang up. */
  readonly stream: boolean;
  /** The tenants known to own the resource named in the path (none: unknown, or nothing named). */
  readonly owners: readonly string[];
}

/** Knobs that are valid but make a request slow or costly: the fuzz keeps them small. */
export const CAPS: Caps = {
  waitMs: 50,
  timeLimitMs: 500,
  horizonPeriods: 4,
  inputs: 5,
  callIds: 6,
};

const UNSTORABLE_BYTES = ['%00', '%ED%A0%80', '%ED%BF%BF'];
const MALFORMED_ESCAPES = ['%', '%ZZ', '%E0%A4%A', '%C0%AF', '%FF', '%u0041'];

/** Percent-encodes a path segment or query part; lone surrogates become (invalid) WTF-8 bytes. */
export function encode(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.codePointAt(0) as number;
    if (code >= 0xd800 && code <= 0xdfff)
      out += [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
        .map((b) => `%${b.toString(16).toUpperCase()}`)
        .join('');
    else out += encodeURIComponent(char);
  }
  // Dot segments would be resolved away by the URL parser before they are sent.
  return /^\.+$/.test(out) ? out.replace(/\./g, '%2E') : out.replace(/\*/g, '%2A');
}

/** Ids of `list`, the principal's own three times over (valid requests mostly name what they may see). */
function idsFor(list: readonly Owned[], principal: Principal): string[] {
  const recent = list.slice(-60);
  const own = [...new Set(recent.filter((o) => o.tenantId === principal.tenantId).map((o) => o.id))];
  const foreign = [...new Set(recent.filter((o) => o.tenantId !== principal.tenantId).map((o) => o.id))];
  return [...own, ...own, ...own, ...foreign.slice(-10)];
}

/** Values that point at what exists (or existed), by operation and parameter or property name. */
export function hintsFor(op: Operation, world: World, principal: Principal): Hints {
  const months = recentMonths();
  const ownApps = world.apps.filter((a) => a.tenantId === principal.tenantId).slice(-20);
  const ownCalls = [
    ...new Set(world.calls.filter((c) => c.tenantId === principal.tenantId).map((c) => c.id)),
  ].slice(-20);
  const hints: Record<string, readonly unknown[]> = {
    gpu: world.catalog.gpus,
    vendors: world.catalog.vendors,
    regions: world.catalog.regions,
    tenant: [...world.tenants, 'fuzz-new-a', 'fuzz-new-b', 'fuzz.new_c'],
    idempotencyKey: ['fuzz-key-1', 'fuzz-key-2', 'fuzz-key-3'],
    month: months,
    from: ['2026-01-01', '2025-12-31T23:59:59Z', '1970-01-01', new Date().toISOString().slice(0, 10)],
    to: ['2026-12-01', '2100-01-01', new Date(Date.now() + 86_400_000).toISOString(), '1970-01-02'],
    planSchedule: ['*/30 * * * * *', '0 * * * * *', '*/5 * * * * *'],
    defaultRegionGroup: ['us', 'eu', 'asia'],
    warmRegionGroups: ['us', 'eu'],
    bundleId: idsFor(world.bundles, principal),
    // Whole lists (for the array) and single ids (for its items).
    callIds: [
      ...idsFor(world.calls, principal),
      ...ownCalls.slice(0, 3).map((_id, i) => ownCalls.slice(i, i + 3)),
    ],
    fn: [...new Set(ownApps.flatMap((a) => a.functions))],
  };
  if (op.id === 'deployApp') hints['*key'] = ['fn', 'square', 'main', 'embed'];
  if (op.id === 'setPolicy' || op.id === 'setPriceBook')
    hints['*key'] = [...world.catalog.gpus.slice(0, 6), ...world.catalog.regions.slice(0, 4), 'default'];
  if (op.path.startsWith('/v1/leases/')) hints.id = idsFor(world.leases, principal);
  if (op.path.startsWith('/v1/calls/')) hints.id = idsFor(world.calls, principal);
  if (op.path.startsWith('/v1/bundles/')) hints.id = idsFor(world.bundles, principal);
  if (op.path.startsWith('/v1/apps/')) hints.name = idsFor(world.apps, principal);
  if (op.path.startsWith('/v1/tenants/')) hints.name = world.tenants;
  return hints;
}

function recentMonths(): string[] {
  const now = new Date();
  const month = (offset: number) => {
    const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset, 1));
    return `${String(d.getUTCFullYear()).padStart(4, '0')}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
  };
  return [month(-1), month(-2), month(-13), month(0), month(1), '0001-01', '0099-12'];
}

/** Body schemas the document leaves open (`object`): the broker's own, for bodies that pass its checks. */
export interface Overlays {
  readonly [operationId: string]: JsonSchema;
}

export interface CaseContext {
  readonly model: ApiModel;
  readonly world: World;
  readonly overlays: Overlays;
}

const principalWeights: [PrincipalKind, number][] = [
  ['operator', 30],
  ['tenant', 30],
  ['tenant2', 8],
  ['fresh', 6],
  ['none', 10],
  ['malformed', 8],
  ['unknown', 8],
];

function principalArb(world: World): fc.Arbitrary<Principal> {
  return fc
    .oneof(...principalWeights.map(([kind, weight]) => ({ weight, arbitrary: fc.constant(kind) })))
    .chain((kind): fc.Arbitrary<Principal> => {
      const anonymous = (token: string | undefined) => ({
        kind,
        token,
        tenantId: undefined,
        tenantName: undefined,
        role: undefined,
      });
      if (kind === 'operator') return fc.constant(world.operator);
      if (kind === 'tenant') return fc.constant(world.tenant);
      if (kind === 'tenant2') return fc.constant(world.tenant2);
      if (kind === 'fresh')
        return world.fresh.length > 0
          ? fc.constantFrom(...world.fresh.slice(-10))
          : fc.constant(world.tenant);
      if (kind === 'none') return fc.constant(anonymous(undefined));
      if (kind === 'unknown')
        return fc
          .base64String({ minLength: 43, maxLength: 44 })
          .map((t) => anonymous(`gpb_${t.replace(/[+/=]/g, 'x')}`));
      return fc.constant(anonymous('malformed'));
    });
}

/** The Authorization header for a principal (the malformed ones are sent as they are). */
const MALFORMED_AUTH = [
  'Bearer',
  'Bearer ',
  'Basic dXNlcjpwYXNz',
  'bearer a b',
  'Token abc',
  `Bearer ${'a'.repeat(8_000)}`,
  'Bearer\tgpb_x',
  'Bearer gpb_ x',
  '',
];

function authArb(principal: Principal): fc.Arbitrary<Record<string, string>> {
  if (principal.kind === 'none') return fc.constant({});
  if (principal.kind === 'malformed')
    return fc.constantFrom(...MALFORMED_AUTH).map((value) => ({ authorization: value }));
  return fc.constant({ authorization: `Bearer ${principal.token}` });
}

type Variant =
  | 'valid'
  | 'param-invalid'
  | 'param-hostile'
  | 'query-invalid'
  | 'query-extra'
  | 'body-invalid'
  | 'body-unstorable'
  | 'body-number-token'
  | 'body-duplicate-key'
  | 'body-malformed'
  | 'body-content-type'
  | 'body-missing'
  | 'body-huge'
  | 'body-deep'
  | 'body-on-bodyless';

function variantsOf(op: Operation): [Variant, number][] {
  const out: [Variant, number][] = [['valid', 40]];
  const pathParams = op.parameters.filter((p) => p.in === 'path');
  const queryParams = op.parameters.filter((p) => p.in === 'query');
  if (pathParams.length > 0) out.push(['param-invalid', 8], ['param-hostile', 6]);
  if (queryParams.length > 0) out.push(['query-invalid', 6]);
  out.push(['query-extra', 2]);
  if (op.body?.content['application/json'])
    out.push(
      ['body-invalid', 16],
      ['body-unstorable', 5],
      ['body-number-token', 3],
      ['body-duplicate-key', 2],
      ['body-malformed', 5],
      ['body-content-type', 4],
      ['body-missing', 2],
      ['body-huge', 1],
      ['body-deep', 2],
    );
  else if (op.body) out.push(['body-invalid', 10], ['body-missing', 2]);
  else if (op.write) out.push(['body-on-bodyless', 2]);
  return out;
}

interface Parts {
  pathValues: Record<string, { encoded: string; value: string }>;
  query: [string, string][];
  headers: Record<string, string>;
  body: string | Uint8Array | undefined;
  reasons: string[];
  unknown: string[];
  why: string;
}

/** A case for one documented operation. */
export function operationCase(op: Operation, ctx: CaseContext): fc.Arbitrary<Case> {
  const variant = fc.oneof(...variantsOf(op).map(([v, weight]) => ({ weight, arbitrary: fc.constant(v) })));
  return fc.tuple(principalArb(ctx.world), variant).chain(([principal, v]) => {
    const gen: GenContext = {
      resolve: ctx.model.resolve,
      hints: hintsFor(op, ctx.world, principal),
      caps: CAPS,
    };
    return fc
      .tuple(authArb(principal), pathArb(op, gen, v), queryArb(op, gen, v), bodyArb(op, gen, ctx, v))
      .map(([auth, path, query, body]) => {
        const parts: Parts = {
          pathValues: path.values,
          query: query.pairs,
          headers: { ...auth, ...body.headers },
          body: body.body,
          reasons: [...path.reasons, ...query.reasons, ...body.reasons],
          unknown: [...query.unknown, ...body.unknown],
          why: [v, path.why, query.why, body.why].filter(Boolean).join('; '),
        };
        if (op.body?.content['application/octet-stream']) matchBundleId(parts, v);
        return assemble(op, principal, parts, ctx.world);
      });
  });
}

/** A bundle's id is its SHA-256: valid uploads name their body's, the others keep (and are refused for) theirs. */
function matchBundleId(parts: Parts, variant: Variant): void {
  const hash = sha256Hex(parts.body);
  if (variant === 'valid' || variant === 'query-extra') parts.pathValues.id = { encoded: hash, value: hash };
  else if (parts.pathValues.id?.value !== hash) parts.reasons.push('the body does not hash to the id');
}

function assemble(op: Operation, principal: Principal, parts: Parts, world: World): Case {
  const reasons = [...parts.reasons];
  const tokenless =
    principal.kind === 'none' || principal.kind === 'malformed' || principal.kind === 'unknown';
  if (op.secured && tokenless) reasons.unshift(`no valid token (${principal.kind})`);
  if (op.secured && !tokenless && op.operatorOnly && principal.role !== 'operator')
    reasons.unshift('a tenant on an operator route');
  const path = op.path.replace(/\{(\w+)\}/g, (_m, name: string) => parts.pathValues[name]?.encoded ?? '');
  const query = parts.query.map(([k, v]) => `${k}=${v}`).join('&');
  const owners = ownersOf(op, parts, world);
  return {
    op: op.id,
    transport: 'fetch',
    method: op.method,
    target: query ? `${path}?${query}` : path,
    headers: parts.headers,
    body: parts.body,
    principal: principal.kind,
    expect: reasons.length > 0 ? 'invalid' : parts.unknown.length > 0 ? 'unknown' : 'valid',
    why: reasons.length > 0 ? reasons.join('; ') : [parts.why, ...parts.unknown].filter(Boolean).join('; '),
    write: op.write,
    stream: op.id === 'streamAppLogs',
    owners,
  };
}

/** Tenants known to own the resource the path names (ids of leases and calls are unique; app names and bundle
 * hashes are per tenant, so several may). */
function ownersOf(op: Operation, parts: Parts, world: World): string[] {
  const id = parts.pathValues.id?.value;
  const name = parts.pathValues.name?.value;
  const find = (list: readonly Owned[], key: string | undefined) =>
    key === undefined ? [] : [...new Set(list.filter((o) => o.id === key).map((o) => o.tenantId))];
  if (op.path.startsWith('/v1/leases/')) return find(world.leases, id);
  if (op.path.startsWith('/v1/calls/')) return find(world.calls, id);
  if (op.path.startsWith('/v1/bundles/') && op.method === 'GET') return find(world.bundles, id);
  if (op.path.startsWith('/v1/apps/') && op.method !== 'PUT') return find(world.apps, name);
  return [];
}

interface PathPart {
  values: Record<string, { encoded: string; value: string }>;
  reasons: string[];
  why: string;
}

function pathArb(op: Operation, gen: GenContext, variant: Variant): fc.Arbitrary<PathPart> {
  const params = op.parameters.filter((p) => p.in === 'path');
  if (params.length === 0) return fc.constant({ values: {}, reasons: [], why: '' });
  const broken =
    variant === 'param-invalid' || variant === 'param-hostile' ? fc.nat(params.length - 1) : fc.constant(-1);
  return broken.chain((which) =>
    fc.tuple(...params.map((p, i) => paramValue(p, gen, i === which ? variant : 'valid'))).map((values) => {
      const out: PathPart = { values: {}, reasons: [], why: '' };
      values.forEach((v, i) => {
        const p = params[i] as Parameter;
        out.values[p.name] = { encoded: v.encoded, value: v.value };
        if (v.reason) out.reasons.push(`${p.name}: ${v.reason}`);
        if (v.why) out.why = `${p.name}: ${v.why}`;
      });
      return out;
    }),
  );
}

interface ParamValue {
  encoded: string;
  value: string;
  reason?: string;
  why?: string;
}

/** A path or query parameter's value (as text) and why it is invalid, if it is. */
function paramValue(p: Parameter, gen: GenContext, variant: Variant): fc.Arbitrary<ParamValue> {
  const judge = (value: string, why?: string): ParamValue => {
    const reason = paramViolation(p, value, gen);
    return { encoded: encode(value), value, ...(reason ? { reason } : {}), ...(why ? { why } : {}) };
  };
  if (variant === 'valid')
    return validValue(p.schema, gen, p.name).map((v) => judge(typeof v === 'string' ? v : String(v)));
  if (variant === 'param-hostile')
    return fc.oneof(
      fc.constantFrom(...UNSTORABLE_BYTES, ...MALFORMED_ESCAPES).chain((bad) =>
        validValue(p.schema, gen, p.name).map((v) => {
          const text = typeof v === 'string' ? v : String(v);
          return {
            encoded: `${encode(text)}${bad}`,
            value: `${text}${bad}`,
            reason: 'NUL, a lone surrogate or malformed percent-encoding',
            why: bad,
          };
        }),
      ),
      fc.constantFrom(...ODD_TEXT, '%2F', 'a/b', ' ').map((text) => judge(text, 'odd text')),
      fc.integer({ min: 1_000, max: 12_000 }).map((n) => judge('x'.repeat(n), 'long')),
    );
  return invalidValue(p.schema, gen, p.name).map((bad) => {
    // As text, a wrong type may well be valid ("1" for a name): the text sent is judged, not the mutation.
    const text = (typeof bad.value === 'string' ? bad.value : JSON.stringify(bad.value)).slice(0, 12_000);
    return judge(text, bad.why);
  });
}

/** Why a parameter's text breaks its schema; integers must be decimal literals in range. */
function paramViolation(p: Parameter, text: string, gen: GenContext): string | undefined {
  if (unstorable(text)) return 'NUL or lone surrogate';
  if (p.in === 'path' && text === '') return 'empty';
  const types = Array.isArray(p.schema.type) ? p.schema.type : [p.schema.type];
  if (types.includes('integer') || types.includes('number')) {
    if (!/^-?\d+(\.\d+)?$/.test(text)) return 'not a number';
    return violation(Number(text), p.schema, gen.resolve);
  }
  return violation(text, p.schema, gen.resolve);
}

interface QueryPart {
  pairs: [string, string][];
  reasons: string[];
  unknown: string[];
  why: string;
}

function queryArb(op: Operation, gen: GenContext, variant: Variant): fc.Arbitrary<QueryPart> {
  const params = op.parameters.filter((p) => p.in === 'query');
  const chosen = fc
    .subarray(params)
    .chain((subset) =>
      fc.tuple(...subset.map((p) => paramValue(p, gen, 'valid').map((v) => [p, v] as const))),
    );
  return chosen.chain((pairs) => {
    const base: QueryPart = {
      pairs: pairs.map(([p, v]) => [encode(p.name), v.encoded]),
      reasons: [],
      unknown: [],
      why: '',
    };
    if (variant === 'query-invalid' && params.length > 0)
      return fc.constantFrom(...params).chain((p) =>
        fc.oneof(paramValue(p, gen, 'param-invalid'), paramValue(p, gen, 'param-hostile')).map((bad) => ({
          ...base,
          pairs: [
            ...base.pairs.filter(([k]) => k !== p.name),
            [encode(p.name), bad.encoded] as [string, string],
          ],
          // Reads only: the document does not say what a server does with a bad query beyond refusing it.
          reasons: bad.reason ? [`query ${p.name}: ${bad.reason}`] : [],
          why: `query ${p.name}: ${bad.why ?? 'invalid'}`,
        })),
      );
    if (variant === 'query-extra')
      return fc
        .oneof(
          fc.constantFrom('x', '__proto__', 'constructor', 'tenant', 'waitMs', 'a[]', '%00', 'id'),
          storableString(1, 8),
        )
        .chain((key) =>
          fc
            .oneof(fc.constantFrom('', '1', '%00', '%ZZ', 'a%26b'), storableString(0, 8).map(encode))
            .map((value) => {
              const rawKey = /%|\[/.test(key) ? key : encode(key);
              const hostile = /%00|%ZZ/.test(`${rawKey}=${value}`);
              return {
                ...base,
                pairs: [...base.pairs, [rawKey, value] as [string, string]],
                reasons: hostile ? ['query: NUL or malformed percent-encoding'] : [],
                unknown: hostile ? [] : [`extra or repeated query key "${key}"`],
                why: `query ${rawKey}=${value}`,
              };
            }),
        );
    return fc.constant(base);
  });
}

interface BodyPart {
  body: string | Uint8Array | undefined;
  headers: Record<string, string>;
  reasons: string[];
  unknown: string[];
  why: string;
}

const JSON_TYPE = { 'content-type': 'application/json' };
const MALFORMED_JSON = [
  '',
  '{',
  '{"a":',
  '{"a":1,}',
  "{'a':1}",
  '{a:1}',
  '[1,2',
  'NaN',
  '{"a":NaN}',
  '{"a":Infinity}',
  '// c\n{}',
  '{"a":1}{"b":2}',
  '\u0000',
  'nul',
  'undefined',
  '{"a":"\\x41"}',
  '{"a":"\\u12"}',
  '{"a":"unterminated}',
  '<xml/>',
  '{"a":1}\u0000',
  '{"a":01}',
  '{"a":.5}',
  '{"a":+1}',
  '{"a":0x10}',
  '{"a":"\t"}',
  '\ufeff\ufeff{}',
  '{"a" 1}',
];
const OTHER_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'application/jsonp',
  'application/octet-stream',
  'json',
  '',
];
const LENIENT_TYPES = [
  'APPLICATION/JSON',
  'application/json; charset=utf-16',
  'application/merge-patch+json',
];

function bodySchema(op: Operation, ctx: CaseContext): JsonSchema | undefined {
  return ctx.overlays[op.id] ?? op.body?.content['application/json'];
}

function bodyArb(op: Operation, gen: GenContext, ctx: CaseContext, variant: Variant): fc.Arbitrary<BodyPart> {
  const none: BodyPart = { body: undefined, headers: {}, reasons: [], unknown: [], why: '' };
  if (!op.body) {
    if (variant !== 'body-on-bodyless') return fc.constant(none);
    return anyJson.map((value) => ({
      ...none,
      body: JSON.stringify(value) ?? 'null',
      headers: { ...JSON_TYPE },
      unknown: ['a body on a route that takes none'],
    }));
  }
  if (op.body.content['application/octet-stream']) return bundleBody(variant);
  if (op.body.content['application/gzip']) return layerBody(variant);
  const schema = bodySchema(op, ctx) as JsonSchema;
  const judged = (
    text: string,
    why: string,
    headers: Record<string, string> = { ...JSON_TYPE },
  ): BodyPart => ({
    body: text,
    headers,
    reasons: jsonReasons(text, schema, gen),
    unknown: [],
    why,
  });
  const valid = validValue(schema, gen).map((value) => finishBody(op, value));
  switch (variant) {
    case 'body-invalid':
      return invalidValue(schema, gen).map((bad) => judged(JSON.stringify(bad.value) ?? '', bad.why));
    case 'body-unstorable':
      return fc.tuple(valid, fc.constantFrom(...UNSTORABLE_TEXT), fc.nat()).map(([value, bad, at]) => {
        const text = replaceString(JSON.stringify(value), JSON.stringify(bad).slice(1, -1), at);
        return judged(text, `unstorable text ${JSON.stringify(bad)}`);
      });
    case 'body-number-token':
      return fc
        .tuple(valid, fc.constantFrom(...NUMBER_TOKENS), fc.nat())
        .map(([value, token, at]) =>
          judged(replaceNumber(JSON.stringify(value), token, at), `number token ${token}`),
        );
    case 'body-duplicate-key':
      return fc.tuple(valid, anyJson).map(([value, extra]) => {
        const text = JSON.stringify(value);
        const key = Object.keys(value as object)[0] ?? 'a';
        const doubled =
          text === '{}' ? text : `${text.slice(0, -1)},${JSON.stringify(key)}:${JSON.stringify(extra)}}`;
        return judged(doubled, `duplicate key "${key}"`);
      });
    case 'body-malformed':
      return fc
        .oneof(
          fc.constantFrom(...MALFORMED_JSON),
          fc.constantFrom('null', '[]', '"x"', '1', 'true', '[{}]'),
          valid.chain((value) =>
            fc.nat().map((cut) => {
              const text = JSON.stringify(value);
              return text.slice(0, cut % Math.max(text.length, 1));
            }),
          ),
        )
        .map((text) => judged(text, 'malformed or non-object JSON'));
    case 'body-content-type':
      return fc.tuple(valid, fc.constantFrom(...OTHER_TYPES, ...LENIENT_TYPES)).map(([value, type]) => {
        const part = judged(
          JSON.stringify(value),
          `content-type "${type}"`,
          type ? { 'content-type': type } : {},
        );
        if (LENIENT_TYPES.includes(type)) return { ...part, unknown: [`content-type ${type}`] };
        return { ...part, reasons: [...part.reasons, `content-type "${type}" is not application/json`] };
      });
    case 'body-missing':
      return fc.constantFrom({}, { ...JSON_TYPE }).map((headers) => ({
        ...none,
        headers,
        reasons: op.body?.required ? ['no body'] : [],
        why: 'no body',
      }));
    case 'body-huge':
      return valid.map((value) => {
        const text = JSON.stringify(value);
        const padded = `${text.slice(0, -1)}${text === '{}' ? '' : ','}"pad":"${'x'.repeat(1_100_000)}"}`;
        return { ...judged(padded, 'body over 1 MB'), reasons: ['body over 1 MB'] };
      });
    case 'body-deep':
      return fc
        .tuple(
          fc.integer({ min: 65, max: 20_000 }),
          fc.constantFrom<'array' | 'object'>('array', 'object'),
          valid,
        )
        .map(([depth, kind, value]) => {
          const text = JSON.stringify(value);
          const nested = `${text.slice(0, -1)}${text === '{}' ? '' : ','}"deep":${deeplyNested(depth, kind)}}`;
          return judged(nested, `nested ${depth} deep`);
        });
    default:
      return valid.map((value) => judged(JSON.stringify(value), ''));
  }
}

/**
 * Valid bodies whose defaults are costly get a cheap value instead: a wait for calls that waits 10 s by default,
 * and a policy whose solver may run 10 s by default (a solve blocks the broker's event loop while it runs).
 */
function finishBody(op: Operation, value: unknown): unknown {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
  if (op.id === 'waitForCalls' && !('waitMs' in value)) return { ...value, waitMs: 0 };
  if (op.id === 'setPolicy') {
    const solver = (value as { solver?: Record<string, unknown> }).solver ?? {};
    const limit = Math.min(Number(solver.timeLimitMs ?? FUZZ_SOLVER_MS), FUZZ_SOLVER_MS);
    return { ...value, solver: { ...solver, timeLimitMs: limit } };
  }
  return value;
}

/** The longest solve the fuzz lets a policy ask for. */
export const FUZZ_SOLVER_MS = 500;

/** Why a JSON body (as text) is invalid: unparseable, against the schema, or against the text rules. */
export function jsonReasons(text: string, schema: JsonSchema, gen: GenContext): string[] {
  let value: unknown;
  try {
    value = JSON.parse(text.replace(/^\ufeff/, ''));
  } catch {
    return ['not JSON'];
  }
  const reasons: string[] = [];
  const broken = violation(value, schema, gen.resolve);
  if (broken) reasons.push(broken);
  const text_ = textRuleViolation(value);
  if (text_) reasons.push(text_);
  return reasons;
}

/** Puts `insert` inside the `at`-th string literal of the JSON text (or appends a key holding it). */
function replaceString(text: string, insert: string, at: number): string {
  const strings = [...text.matchAll(/"(?:[^"\\]|\\.)*"/g)];
  if (strings.length === 0) return text === '{}' ? `{"k":"${insert}"}` : text;
  const m = strings[at % strings.length] as RegExpMatchArray;
  const index = (m.index as number) + 1;
  return `${text.slice(0, index)}${insert}${text.slice(index)}`;
}

/** Swaps the `at`-th number literal of the JSON text for `token`. */
function replaceNumber(text: string, token: string, at: number): string {
  const numbers = [...text.matchAll(/(?<=[:,[])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?=[,\]}])/g)];
  if (numbers.length === 0) return text === '{}' ? `{"n":${token}}` : `${text.slice(0, -1)},"n":${token}}`;
  const m = numbers[at % numbers.length] as RegExpMatchArray;
  const index = m.index as number;
  return `${text.slice(0, index)}${token}${text.slice(index + m[0].length)}`;
}

function bundleBody(variant: Variant): fc.Arbitrary<BodyPart> {
  const bytes = fc.oneof(
    { weight: 4, arbitrary: fc.uint8Array({ maxLength: 2_048 }) },
    {
      weight: 4,
      arbitrary: fc.nat().map((n) => new TextEncoder().encode(`export const fuzz = ${n};\n`)),
    },
    { weight: 1, arbitrary: fc.integer({ min: 10_000, max: 200_000 }).map((n) => new Uint8Array(n).fill(7)) },
  );
  const type = fc.constantFrom('application/octet-stream', 'application/octet-stream', 'text/javascript', '');
  return fc.tuple(bytes, type).map(
    ([body, contentType]): BodyPart => ({
      body: variant === 'body-missing' ? undefined : body,
      headers: contentType ? { 'content-type': contentType } : ({} as Record<string, string>),
      reasons: [],
      unknown: [],
      why: variant === 'body-invalid' ? 'bytes whose hash is not the id' : '',
    }),
  );
}

/** An image layer: gzip bytes are taken (whatever the id), anything else or nothing is refused. */
function layerBody(variant: Variant): fc.Arbitrary<BodyPart> {
  const invalid = variant === 'body-invalid';
  const missing = variant === 'body-missing';
  const bytes = invalid
    ? fc.uint8Array({ minLength: 1, maxLength: 2_048 }).filter((b) => !(b[0] === 0x1f && b[1] === 0x8b))
    : fc.uint8Array({ maxLength: 2_048 }).map((b) => new Uint8Array(gzipSync(b)));
  const type = fc.constantFrom('application/gzip', 'application/octet-stream', '');
  return fc.tuple(bytes, type).map(
    ([body, contentType]): BodyPart => ({
      body: missing ? undefined : body,
      headers: contentType ? { 'content-type': contentType } : ({} as Record<string, string>),
      reasons: invalid ? ['a layer that is not gzip'] : missing ? ['no layer in the body'] : [],
      unknown: [],
      why: invalid ? 'bytes that are not gzip' : missing ? 'no body' : '',
    }),
  );
}

/** The bundle id that matches a body (the path's `id` of a valid upload). */
export function sha256Hex(body: string | Uint8Array | undefined): string {
  return createHash('sha256')
    .update(body ?? new Uint8Array())
    .digest('hex');
}
