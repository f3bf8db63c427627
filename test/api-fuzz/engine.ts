/**
 * The API fuzz: requests generated from the OpenAPI document (fast-check, seeded) against a running broker, one at
 * a time over real HTTP, each judged by the oracles:
 *
 *   1. no answer has a status of 500 or more;
 *   2. every error (400 or more) is `application/problem+json` with `type`, `title`, `status` (the answer's) and
 *      `detail`, and a 400 names the `field`;
 *   3. no invalid write: a write the fuzz knows is invalid gets a 4xx, and a write answered with an error changes
 *      nothing (a snapshot of the broker's state, state.ts, before and after it is the same);
 *   4. a tenant never gets a 2xx for another tenant's lease, call, app or bundle;
 *   5. a 2xx answer has a documented content type, and its JSON body conforms to the documented schema;
 *   6. every request is answered (or, for raw bytes, the connection closed) within the timeout.
 *
 * Latency is recorded per request. Request `i` of seed `s` is generated from fast-check's generator seeded with
 * `s + i` and the ids the broker handed out before it, so a run with the same seed sends the same requests as long
 * as the broker answers them the same way (the broker is seeded too; tokens and timing are not).
 */
import fc from 'fast-check';
import { z } from 'zod';
import { priceBookSchema } from '../../broker/billing/price-book.ts';
import { brokerPolicySchema } from '../../broker/policy.ts';
import type { RunningServer } from '../../broker/server.ts';
import { functionOptionsSchema } from '../../runtime/function-spec.ts';
import {
  type Case,
  type CaseContext,
  FUZZ_SOLVER_MS,
  type Overlays,
  operationCase,
  type Principal,
  type World,
} from './cases.ts';
import { rawCase, undocumentedCase } from './hostile.ts';
import { type ApiModel, apiModel, documentedResponse, type Operation } from './model.ts';
import type { JsonSchema } from './schema.ts';
import { violation } from './schema.ts';
import { differences, type Snapshot, StateProbe } from './state.ts';
import { type Answer, send } from './transport.ts';

export interface FuzzOptions {
  readonly seed: number;
  readonly requests: number;
  /** Per request (default 15 s). */
  readonly timeoutMs?: number;
  /** Failures kept with their reproduction, per kind (default 10). */
  readonly keepFailures?: number;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
  /** Shares of requests outside the document: wrong methods and paths, and raw socket requests. */
  readonly undocumentedShare?: number;
  readonly rawShare?: number;
}

export type FailureKind =
  | 'server-error'
  | 'problem-shape'
  | 'accepted-invalid-write'
  | 'state-changed-on-error'
  | 'isolation'
  | 'response-contract'
  | 'no-answer';

export interface Failure {
  readonly kind: FailureKind;
  readonly detail: string;
  readonly seed: number;
  readonly index: number;
  readonly request: Reproduction;
  readonly status: number | undefined;
  readonly answer: string | undefined;
}

export interface Reproduction {
  readonly op: string;
  readonly method: string;
  readonly target: string;
  readonly principal: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The body (or raw request) as text, cut at 2,000 characters, and its full length. */
  readonly body: string | undefined;
  readonly bodyLength: number;
  readonly expect: string;
  readonly why: string;
}

export interface OperationStats {
  requests: number;
  byStatus: Record<string, number>;
  valid: number;
  invalid: number;
  validAccepted: number;
  p50Ms: number;
  p99Ms: number;
  undocumentedStatuses: number[];
  /** A few valid requests that were refused, and why (coverage: valid paths the generator misses). */
  refusedValid: string[];
}

export interface FuzzReport {
  readonly seed: number;
  readonly requests: number;
  readonly setupRequests: number;
  readonly durationMs: number;
  readonly transports: Record<string, number>;
  readonly expectations: Record<string, number>;
  readonly statusClasses: Record<string, number>;
  readonly serverErrors: number;
  readonly acceptedInvalidWrites: number;
  readonly stateChangesOnError: number;
  readonly problemShapeViolations: number;
  readonly isolationBreaches: number;
  readonly responseContractViolations: number;
  readonly noAnswer: number;
  /** Informational: reads the fuzz called invalid that got a 2xx; connections closed without an answer. */
  readonly acceptedInvalidReads: number;
  readonly acceptedInvalidReadSamples: string[];
  readonly closedWithoutAnswer: number;
  readonly writesChecked: number;
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  readonly slowest: { ms: number; op: string; method: string; target: string }[];
  readonly operations: Record<string, OperationStats>;
  readonly failures: Failure[];
  readonly failureCounts: Record<FailureKind, number>;
  readonly ok: boolean;
}

/** Body schemas the document leaves open, from the broker's own validators (their input side). */
export function overlays(model: ApiModel): Overlays {
  const input = (schema: z.ZodType) =>
    z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const deploy = model.operations.find((o) => o.id === 'deployApp')?.body?.content['application/json'];
  const out: Record<string, JsonSchema> = {
    setPolicy: input(brokerPolicySchema),
    setPriceBook: input(priceBookSchema),
  };
  if (deploy) {
    const resolved = deploy.$ref ? model.resolve(deploy.$ref) : deploy;
    out.deployApp = {
      ...resolved,
      properties: {
        ...resolved.properties,
        functions: {
          type: 'object',
          // The document leaves the key rule out (a record's key schema is not emitted); function-routes.ts has it.
          propertyNames: resolved.properties?.functions?.propertyNames ?? {
            type: 'string',
            pattern: '^[A-Za-z_$][A-Za-z0-9_$]{0,63}$',
          },
          additionalProperties: input(functionOptionsSchema),
        },
      },
    };
  }
  return out;
}

const quantile = (sorted: readonly number[], q: number) =>
  sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number);
const round = (ms: number) => Math.round(ms * 100) / 100;

interface Setup {
  world: World;
  setupRequests: number;
}

async function api(
  url: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : undefined };
}

/** An operator token, two tenants made through the API, a bundle and an app for the first, and a lease each. */
async function setUp(server: RunningServer): Promise<Setup> {
  const { broker, url } = server;
  const operatorToken = server.operatorToken ?? (await broker.tokens.create('operator', 'operator')).token;
  const principal = async (kind: Principal['kind'], token: string): Promise<Principal> => {
    const p = await broker.tokens.authenticate(token);
    if (!p) throw new Error(`the ${kind} token does not authenticate`);
    return { kind, token, tenantId: p.tenantId, tenantName: p.tenantName, role: p.role };
  };
  let requests = 0;
  const tokenFor = async (tenant: string) => {
    requests++;
    const answer = await api(url, 'POST', '/v1/tokens', operatorToken, { tenant });
    if (answer.status !== 201) throw new Error(`POST /v1/tokens gave ${answer.status}`);
    return (answer.json as { token: string }).token;
  };
  const operator = await principal('operator', operatorToken);
  // Solves run on the broker's event loop: the default 10 s limit would stall every request behind a tick.
  requests++;
  const policy = await api(url, 'PUT', '/v1/policy', operatorToken, {
    solver: { timeLimitMs: FUZZ_SOLVER_MS },
  });
  if (policy.status !== 200) throw new Error(`PUT /v1/policy gave ${policy.status}`);
  const tenant = await principal('tenant', await tokenFor('fuzz-alpha'));
  const tenant2 = await principal('tenant2', await tokenFor('fuzz-beta'));
  const offerings = broker.offerings.all();
  const uniq = (values: string[]) => [...new Set(values)].sort();
  const world: World = {
    operator,
    tenant,
    tenant2,
    fresh: [],
    leases: [],
    calls: [],
    apps: [],
    bundles: [],
    tenants: ['fuzz-alpha', 'fuzz-beta', 'operator'],
    catalog: {
      gpus: uniq(offerings.map((o) => o.gpu)),
      vendors: uniq(offerings.map((o) => o.vendor)),
      regions: uniq(offerings.map((o) => o.region)).slice(0, 24),
    },
  };
  // A bundle, an app and a call of it, and a lease, so that valid requests can name what exists from the start.
  const bundle = new TextEncoder().encode('export async function square(x) { return x * x; }\n');
  const { createHash } = await import('node:crypto');
  const bundleId = createHash('sha256').update(bundle).digest('hex');
  for (const p of [tenant, tenant2]) {
    requests += 4;
    const upload = await fetch(`${url}/v1/bundles/${bundleId}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${p.token}`, 'content-type': 'application/octet-stream' },
      body: bundle,
    });
    await upload.text();
    world.bundles.push({ id: bundleId, tenantId: p.tenantId as string });
    const app = `fuzz-app-${p.kind}`;
    const deploy = await api(url, 'PUT', `/v1/apps/${app}`, p.token as string, {
      bundleId,
      functions: { square: { gpu: 'H100' } },
    });
    if (deploy.status !== 200) throw new Error(`PUT /v1/apps gave ${deploy.status}`);
    world.apps.push({ id: app, tenantId: p.tenantId as string, functions: ['square'] });
    const call = await api(url, 'POST', `/v1/apps/${app}/functions/square/calls`, p.token as string, {
      inputs: [[3]],
    });
    for (const id of (call.json as { callIds?: string[] }).callIds ?? [])
      world.calls.push({ id, tenantId: p.tenantId as string });
    const lease = await api(url, 'POST', '/v1/leases', p.token as string, { gpu: 'H100', count: 1 });
    if ((lease.json as { id?: string }).id)
      world.leases.push({ id: (lease.json as { id: string }).id, tenantId: p.tenantId as string });
  }
  return { world, setupRequests: requests };
}

/** Runs the fuzz against `server` and reports; never throws for what the oracles find. */
export async function runFuzz(server: RunningServer, options: FuzzOptions): Promise<FuzzReport> {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? 15_000;
  const keep = options.keepFailures ?? 10;
  const documentResponse = await fetch(`${server.url}/openapi.json`);
  const model = apiModel(await documentResponse.json());
  const { world, setupRequests } = await setUp(server);
  const ctx: CaseContext = { model, world, overlays: overlays(model) };
  // The bundle store keeps its directory private; the snapshot counts the files in it.
  const bundleRoot = (server.broker.bundles as unknown as { root?: string }).root;
  if (!bundleRoot) throw new Error('the bundle store has no root directory to watch');
  const probe = new StateProbe(server.broker, bundleRoot);
  for (const app of world.apps) probe.addressedApp(app.tenantId, app.id);
  const byId = new Map(model.operations.map((o) => [o.id, o]));

  const documented = fc.constantFrom(...model.operations).chain((op) => operationCase(op, ctx));
  const undocumentedShare = options.undocumentedShare ?? 0.04;
  const rawShare = options.rawShare ?? 0.03;

  const failures: Failure[] = [];
  const failureCounts: Record<FailureKind, number> = {
    'server-error': 0,
    'problem-shape': 0,
    'accepted-invalid-write': 0,
    'state-changed-on-error': 0,
    isolation: 0,
    'response-contract': 0,
    'no-answer': 0,
  };
  const latencies: number[] = [];
  const perOp = new Map<string, { ms: number[]; stats: OperationStats }>();
  const count = (record: Record<string, number>, key: string) => {
    record[key] = (record[key] ?? 0) + 1;
  };
  const transports: Record<string, number> = {};
  const expectations: Record<string, number> = {};
  const statusClasses: Record<string, number> = {};
  const slowest: { ms: number; op: string; method: string; target: string }[] = [];
  let acceptedInvalidReads = 0;
  const acceptedInvalidReadSamples: string[] = [];
  let closedWithoutAnswer = 0;
  let writesChecked = 0;

  for (let index = 0; index < options.requests; index++) {
    const seed = (options.seed + index) | 0;
    const coin = mulberry32(seed);
    const share = coin();
    const chosen =
      share < rawShare
        ? rawCase(world.operator)
        : share < rawShare + undocumentedShare
          ? undocumentedCase(model, world)
          : documented;
    // fast-check biases a first sample toward small and edge values: one request in four keeps that bias.
    const arbitrary = coin() < 0.25 ? chosen : fc.noBias(chosen);
    const [c] = fc.sample(arbitrary, { seed: seed ^ 0x5f3759df, numRuns: 1 }) as [Case];
    noteAddressedApp(c, world, probe);

    const before: Snapshot | undefined = c.write ? await probe.snapshot() : undefined;
    const outcome = await send(server.url, c, timeoutMs);
    const fail = (kind: FailureKind, detail: string, answer?: Answer) => {
      failureCounts[kind]++;
      if (failureCounts[kind] <= keep)
        failures.push({
          kind,
          detail,
          seed: options.seed,
          index,
          request: reproduce(c, world),
          status: answer?.status,
          answer: answer?.body.slice(0, 500),
        });
    };

    latencies.push(outcome.ms);
    slowest.push({ ms: round(outcome.ms), op: c.op, method: c.method, target: c.target.slice(0, 120) });
    slowest.sort((a, b) => b.ms - a.ms);
    slowest.length = Math.min(slowest.length, 5);
    count(transports, c.transport);
    count(expectations, c.expect);
    const opKey = c.op.startsWith('raw:') ? 'raw' : c.op;
    const entry = perOp.get(opKey) ?? {
      ms: [],
      stats: {
        requests: 0,
        byStatus: {},
        valid: 0,
        invalid: 0,
        validAccepted: 0,
        p50Ms: 0,
        p99Ms: 0,
        undocumentedStatuses: [],
        refusedValid: [],
      },
    };
    perOp.set(opKey, entry);
    entry.ms.push(outcome.ms);
    entry.stats.requests++;
    if (c.expect === 'valid') entry.stats.valid++;
    if (c.expect === 'invalid') entry.stats.invalid++;

    if (outcome.answers.length === 0) {
      if (outcome.error) fail('no-answer', outcome.error);
      else closedWithoutAnswer++;
      count(statusClasses, 'none');
      entry.stats.byStatus.none = (entry.stats.byStatus.none ?? 0) + 1;
    }
    for (const answer of outcome.answers) {
      const status = answer.status;
      count(statusClasses, `${String(status)[0]}xx`);
      count(entry.stats.byStatus, String(status));
      const op = byId.get(c.op);
      if (op && !documentedResponse(op, status) && !entry.stats.undocumentedStatuses.includes(status))
        entry.stats.undocumentedStatuses.push(status);
      if (status >= 500) fail('server-error', `status ${status}`, answer);
      if (status >= 400 && c.method !== 'HEAD') {
        const problem = problemViolation(answer);
        if (problem) fail('problem-shape', problem, answer);
      }
      if (status >= 400 && c.expect === 'valid' && entry.stats.refusedValid.length < 3)
        entry.stats.refusedValid.push(
          `${c.method} ${c.target.slice(0, 100)} as ${c.principal}: ${status} ${answer.body.slice(0, 160)}`,
        );
      if (status >= 200 && status < 300) {
        if (c.expect === 'valid') entry.stats.validAccepted++;
        if (c.expect === 'invalid' && c.write) fail('accepted-invalid-write', c.why, answer);
        if (c.expect === 'invalid' && !c.write) {
          acceptedInvalidReads++;
          if (acceptedInvalidReadSamples.length < 10)
            acceptedInvalidReadSamples.push(
              `${c.method} ${c.target.slice(0, 160)} as ${c.principal}: ${status} (${c.why})`,
            );
        }
        // Operators see every lease; everything else is the tenant's own.
        if (isForeign(c, world) && !(c.op.includes('Lease') && principalOf(c, world)?.role === 'operator'))
          fail(
            'isolation',
            `a ${c.principal} got ${status} for a resource of ${c.owners.join(', ')} only`,
            answer,
          );
        if (op && c.method !== 'HEAD') {
          const contract = contractViolation(op, answer, model, !c.stream);
          if (contract) fail('response-contract', contract, answer);
        }
        const fresh = learn(c, answer, world);
        if (fresh) {
          const p = await server.broker.tokens.authenticate(fresh);
          if (p)
            world.fresh.push({
              kind: 'fresh',
              token: fresh,
              tenantId: p.tenantId,
              tenantName: p.tenantName,
              role: p.role,
            });
          if (world.fresh.length > 20) world.fresh.shift();
        }
      }
    }
    if (before) {
      const refused = outcome.answers.length === 0 || outcome.answers.every((a) => a.status >= 400);
      if (refused || c.expect === 'invalid') {
        writesChecked++;
        const after = await probe.snapshot();
        const changed = differences(before, after);
        const anyAccepted = outcome.answers.some((a) => a.status < 400);
        if (changed.length > 0 && !anyAccepted)
          fail('state-changed-on-error', changed.join('; '), outcome.answers[0]);
      }
    }
    if (options.log && (index + 1) % 1000 === 0)
      options.log(
        `${index + 1} requests, ${failureCounts['server-error']} 5xx, ${totalFailures(failureCounts)} failures`,
      );
  }

  latencies.sort((a, b) => a - b);
  const operations: Record<string, OperationStats> = {};
  for (const [key, { ms, stats }] of [...perOp.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    ms.sort((a, b) => a - b);
    operations[key] = { ...stats, p50Ms: round(quantile(ms, 0.5)), p99Ms: round(quantile(ms, 0.99)) };
  }
  const serious = totalFailures(failureCounts);
  return {
    seed: options.seed,
    requests: options.requests,
    setupRequests,
    durationMs: Math.round(performance.now() - started),
    transports,
    expectations,
    statusClasses,
    serverErrors: failureCounts['server-error'],
    acceptedInvalidWrites: failureCounts['accepted-invalid-write'],
    stateChangesOnError: failureCounts['state-changed-on-error'],
    problemShapeViolations: failureCounts['problem-shape'],
    isolationBreaches: failureCounts.isolation,
    responseContractViolations: failureCounts['response-contract'],
    noAnswer: failureCounts['no-answer'],
    acceptedInvalidReads,
    acceptedInvalidReadSamples,
    closedWithoutAnswer,
    writesChecked,
    latencyMs: {
      p50: round(quantile(latencies, 0.5)),
      p90: round(quantile(latencies, 0.9)),
      p99: round(quantile(latencies, 0.99)),
      max: round(latencies.at(-1) ?? 0),
      mean: round(latencies.reduce((a, b) => a + b, 0) / Math.max(latencies.length, 1)),
    },
    slowest,
    operations,
    failures,
    failureCounts,
    ok: serious === 0,
  };
}

/** A small seeded generator for the run's own coin tosses. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function totalFailures(counts: Record<FailureKind, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** The path names a resource the fuzz knows belongs to other tenants only. */
function isForeign(c: Case, world: World): boolean {
  const principal = principalOf(c, world);
  return principal?.tenantId !== undefined && c.owners.length > 0 && !c.owners.includes(principal.tenantId);
}

/** Why an error answer is not a problem+json of the agreed shape. */
export function problemViolation(answer: Answer): string | undefined {
  if (!answer.contentType?.startsWith('application/problem+json'))
    return `content-type ${answer.contentType ?? '(none)'}, not application/problem+json`;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(answer.body) as Record<string, unknown>;
  } catch {
    return 'the body is not JSON';
  }
  if (!body || typeof body !== 'object') return 'the body is not an object';
  for (const key of ['type', 'title', 'detail'])
    if (typeof body[key] !== 'string' || (body[key] as string).length === 0)
      return `"${key}" missing or not a string`;
  if (body.status !== answer.status)
    return `"status" is ${JSON.stringify(body.status)}, the answer ${answer.status}`;
  if (answer.status === 400 && (typeof body.field !== 'string' || body.field.length === 0))
    return 'a 400 without "field"';
  return undefined;
}

/** Why a 2xx answer breaks the document: undocumented status or content type, or a body off its schema. */
function contractViolation(
  op: Operation,
  answer: Answer,
  model: ApiModel,
  checkBody: boolean,
): string | undefined {
  const documented = documentedResponse(op, answer.status);
  if (!documented) return `status ${answer.status} is not documented`;
  const mediaType = (t: string | undefined) => t?.split(';')[0]?.trim().toLowerCase() ?? '';
  const type = mediaType(answer.contentType);
  const entry = Object.entries(documented).find(([t]) => mediaType(t) === type);
  if (!entry)
    return `content-type ${answer.contentType} is not documented (${Object.keys(documented).join(', ')})`;
  const schema = entry[1];
  if (!schema || !type.endsWith('json') || !checkBody) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(answer.body);
  } catch {
    return 'the body is not JSON';
  }
  const broken = violation(body, schema, model.resolve);
  return broken ? `the body breaks the documented schema: ${broken}` : undefined;
}

/** Remembers the ids a 2xx answer handed out; returns a token it created. */
function learn(c: Case, answer: Answer, world: World): string | undefined {
  const principal = principalOf(c, world);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(answer.body) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (!body || typeof body !== 'object') return undefined;
  const tenantId = principal?.tenantId;
  const cap = <T>(list: T[]) => {
    if (list.length > 200) list.splice(0, list.length - 200);
  };
  if (c.op === 'requestLease' && typeof body.id === 'string' && tenantId) {
    world.leases.push({ id: body.id, tenantId });
    cap(world.leases);
  }
  if (c.op === 'callFunction' && Array.isArray(body.callIds) && tenantId) {
    for (const id of body.callIds.slice(0, 5)) world.calls.push({ id: String(id), tenantId });
    cap(world.calls);
  }
  if (c.op === 'uploadBundle' && typeof body.id === 'string' && tenantId) {
    world.bundles.push({ id: body.id, tenantId });
    cap(world.bundles);
  }
  const dropApp = (name: unknown) => {
    const at = world.apps.findIndex((a) => a.id === name && a.tenantId === tenantId);
    if (at >= 0) world.apps.splice(at, 1);
  };
  if (c.op === 'deployApp' && typeof body.name === 'string' && tenantId) {
    dropApp(body.name);
    world.apps.push({
      id: body.name,
      tenantId,
      functions: Array.isArray(body.functions) ? body.functions.map(String) : [],
    });
    cap(world.apps);
  }
  if (c.op === 'stopApp' && typeof body.name === 'string' && tenantId) dropApp(body.name);
  if (c.op === 'createToken' && typeof body.token === 'string' && typeof body.tenant === 'string') {
    if (!world.tenants.includes(body.tenant)) world.tenants.push(body.tenant);
    cap(world.tenants);
    return body.token;
  }
  return undefined;
}

function principalOf(c: Case, world: World): Principal | undefined {
  if (c.principal === 'operator') return world.operator;
  if (c.principal === 'tenant') return world.tenant;
  if (c.principal === 'tenant2') return world.tenant2;
  if (c.principal === 'fresh') {
    const token = /^Bearer (\S+)$/.exec(c.headers.authorization ?? '')?.[1];
    return world.fresh.find((p) => p.token === token);
  }
  return undefined;
}

/** App names a write addresses, so that the state snapshot watches their runtime state. */
function noteAddressedApp(c: Case, world: World, probe: StateProbe): void {
  const app = /^\/v1\/apps\/([^/?]+)/.exec(c.target)?.[1];
  const principal = principalOf(c, world);
  if (app && principal?.tenantId && c.write) {
    try {
      probe.addressedApp(principal.tenantId, decodeURIComponent(app));
    } catch {
      // Malformed percent-encoding: no app can have that name.
    }
  }
}

function reproduce(c: Case, world: World): Reproduction {
  const tokens = [world.operator, world.tenant, world.tenant2, ...world.fresh];
  const redact = (text: string) =>
    tokens.reduce((out, p) => (p.token ? out.split(p.token).join(`<${p.kind} token>`) : out), text);
  const text =
    c.raw !== undefined
      ? redact(c.raw.toString('latin1'))
      : typeof c.body === 'string'
        ? c.body
        : c.body !== undefined
          ? `<${c.body.byteLength} bytes, sha256 in the path>`
          : undefined;
  const headers = { ...c.headers };
  if (headers.authorization?.startsWith('Bearer gpb_')) headers.authorization = redact(headers.authorization);
  return {
    op: c.op,
    method: c.method,
    target:
      c.target.length > 2_000 ? `${c.target.slice(0, 2_000)}… (${c.target.length} characters)` : c.target,
    principal: c.principal,
    headers,
    body: text === undefined ? undefined : text.length > 2_000 ? `${text.slice(0, 2_000)}…` : text,
    bodyLength: text?.length ?? 0,
    expect: c.expect,
    why: c.why,
  };
}
