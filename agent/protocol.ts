/**
 * The agent protocol: one WebSocket per machine, opened by the agent (`GET /v1/agent/connect`, `Authorization:
 * Bearer <join token | operator token | agent credential>`), JSON text frames, each message validated on arrival.
 *
 *   agent                                   broker
 *     │── hello (machine, GPUs, health, containers) ──▶│  authenticates, binds the connection to one instance
 *     │◀── welcome (agent id, credential on join) ─────│
 *     │── heartbeat (health) every heartbeatMs ───────▶│  silence for 3 heartbeats: the agent is lost
 *     │◀── start / invoke / stop / exec / exec-kill ───│  the runtime's orders
 *     │◀── exec-stdin / exec-resize ───────────────────│  a shell's keystrokes and window (an exec with tty)
 *     │── ready / exited / result / failed / logs ────▶│  what happened, in order
 *     │── exec-output / exec-exit ────────────────────▶│
 *     │◀── bye (revoked, replaced) then close ─────────│
 *
 * Arguments and results are structured-clone values (Dates, Maps, typed arrays cross), carried as base64 of
 * `v8.serialize` inside the JSON envelope, so the control messages stay readable and checked. Every input attempt
 * is fenced by (container id, call id, attempt): the broker drops a report that does not match an attempt it is
 * waiting for, so a late result from a partitioned agent is never delivered or billed twice.
 */
import { deserialize, serialize } from 'node:v8';
// zod's small build: the agent loads this module, and the full one costs it ~5 MB of its idle memory.
import * as z from 'zod/mini';
import english from 'zod/v4/locales/en.js';

// The small build has no messages of its own: a malformed frame should say what is wrong, not just 'Invalid input'.
z.config(english());

export const PROTOCOL_VERSION = 1;
/** What this agent lists in its hello's `features`. */
export const AGENT_FEATURES = ['tty'] as const;
/** Default heartbeat; the broker tells each agent the one it wants in `welcome`. */
export const DEFAULT_HEARTBEAT_MS = 2_000;
/** Heartbeats missed before the broker declares an agent lost. */
export const MISSED_HEARTBEATS = 3;
/** Largest message either side accepts (a bundle travels over HTTP, not here). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

const text = (min: number, max: number) => z.string().check(z.minLength(min), z.maxLength(max));
const anyText = () => z.string();
const upTo = (max: number) => z.string().check(z.maxLength(max));
const int = (min?: number, max?: number) =>
  z
    .int()
    .check(...(min === undefined ? [] : [z.minimum(min)]), ...(max === undefined ? [] : [z.maximum(max)]));
const id = text(1, 200);
/** A terminal's columns or rows. */
const winsize = int(1, 10_000);
const sha256 = z.string().check(z.regex(/^[0-9a-f]{64}$/));
const streamName = z.enum(['stdout', 'stderr']);

export const gpuReportSchema = z.object({
  index: int(0, 1023),
  /** As the catalog names it (`H100`, `A100-80GB`, …). */
  name: text(1, 100),
  memoryMiB: z.optional(int(0)),
});
export type GpuReport = z.infer<typeof gpuReportSchema>;

export const healthSchema = z.object({
  ok: z.boolean(),
  /** Each failed check in words (`nvidia-smi failed: …`); empty when ok. */
  problems: z.array(upTo(1000)).check(z.maxLength(50)),
  driverVersion: z.optional(upTo(100)),
});
export type Health = z.infer<typeof healthSchema>;

export const containerOrderSchema = z.object({
  containerId: z.string().check(z.regex(/^[A-Za-z0-9_][A-Za-z0-9._-]*$/)),
  tenantId: id,
  app: id,
  functionName: id,
  /** The bundle by content: fetched from `GET /v1/agent/bundles/{tenantId}/{sha256}`, its hash checked. */
  bundle: z.object({ tenantId: id, sha256 }),
  gpuIndices: z.array(int(0)),
  env: z.record(z.string(), z.string()),
  concurrency: int(1),
  /** Limits and network (defaults: those of a function that sets none, for a broker older than the agent). */
  cpu: z._default(int(1), 1),
  memoryMiB: z._default(int(1), 4096),
  network: z._default(z.enum(['egress', 'none']), 'egress'),
  /** The image layer (npm packages): fetched from `GET /v1/agent/layers/{tenantId}/{id}`, its SHA-256 checked. */
  layer: z.optional(z.object({ id: sha256, sha256 })),
});
export type ContainerOrder = z.infer<typeof containerOrderSchema>;

export const helloSchema = z.object({
  type: z.literal('hello'),
  protocol: z.int(),
  agentVersion: upTo(100),
  /** The instance this agent runs on, as its provider names it; absent for one of your own machines. */
  instanceId: z.optional(id),
  hostname: upTo(255),
  gpus: z.array(gpuReportSchema).check(z.maxLength(1024)),
  health: healthSchema,
  labels: z.record(upTo(100), upTo(200)),
  /** Where the machine can be reached (its non-internal IP addresses), for users of its leases. */
  addresses: z.optional(z.array(upTo(100)).check(z.maxLength(32))),
  /** A machine of your own: its price, USD per hour. */
  usdPerHour: z.optional(z.number().check(z.minimum(0), z.maximum(10_000))),
  /**
   * What this agent does beyond the first version of its protocol version (absent: nothing): `tty` (an exec under a
   * pseudo-terminal, with exec-stdin and exec-resize: `lease shell`). A broker asks nothing of an agent that does not
   * list it, so an agent updated later keeps working meanwhile.
   */
  features: z.optional(z.array(upTo(50)).check(z.maxLength(50))),
  /** Containers it still runs (after a reconnect or a broker restart), with the order that started each. */
  containers: z
    .array(z.object({ containerId: id, ready: z.boolean(), order: z.optional(containerOrderSchema) }))
    .check(z.maxLength(100_000)),
});
export type Hello = z.infer<typeof helloSchema>;

const errorFields = {
  message: anyText(),
  stack: z.optional(anyText()),
  name: z.optional(upTo(200)),
};

export const agentMessageSchema = z.discriminatedUnion('type', [
  helloSchema,
  z.object({ type: z.literal('heartbeat'), health: healthSchema }),
  z.object({ type: z.literal('ready'), containerId: id }),
  /** The container could not start (spawn failed, bundle failed to load or verify). */
  z.object({ type: z.literal('start-failed'), containerId: id, ...errorFields }),
  z.object({
    type: z.literal('exited'),
    containerId: id,
    code: z.nullable(z.int()),
    signal: z.nullable(anyText()),
    reason: anyText(),
  }),
  z.object({
    type: z.literal('result'),
    containerId: id,
    callId: id,
    attempt: int(1),
    value: anyText(),
    /** How long the function ran in the container, ms (fractional). */
    ranMs: z.optional(z.number().check(z.minimum(0))),
  }),
  /**
   * The input failed: the function threw (`remote`), the container died while running it (`exited`) or before it
   * started (`not-started`: it waited for a slot, nothing of it ran), or it could not be sent (`refused`).
   */
  z.object({
    type: z.literal('failed'),
    containerId: id,
    callId: id,
    attempt: int(1),
    kind: z.enum(['remote', 'exited', 'not-started', 'refused']),
    /** How long the function ran in the container, ms (fractional; `remote`). */
    ranMs: z.optional(z.number().check(z.minimum(0))),
    ...errorFields,
  }),
  z.object({ type: z.literal('log'), containerId: id, stream: streamName, text: anyText(), atMs: z.int() }),
  /** The lines a container wrote during one turn of the agent's event loop, in order (what agents send now). */
  z.object({
    type: z.literal('logs'),
    containerId: id,
    lines: z.array(z.object({ stream: streamName, text: anyText(), atMs: z.int() })).check(z.minLength(1)),
  }),
  z.object({
    type: z.literal('exec-output'),
    execId: id,
    stream: streamName,
    /** base64 of the bytes, so binary output survives. */
    data: anyText(),
  }),
  z.object({
    type: z.literal('exec-exit'),
    execId: id,
    code: z.nullable(z.int()),
    signal: z.nullable(anyText()),
    error: z.optional(anyText()),
  }),
]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;

export const brokerMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('welcome'),
    agentId: id,
    instanceId: id,
    heartbeatMs: int(100),
    /** Given once, when a join token was used: the agent's own credential for every later connection. */
    credential: z.optional(anyText()),
  }),
  z.object({ type: z.literal('start'), container: containerOrderSchema }),
  z.object({
    type: z.literal('invoke'),
    containerId: id,
    callId: id,
    attempt: int(1),
    args: anyText(),
    timeoutMs: z.optional(int(1)),
  }),
  z.object({ type: z.literal('stop'), containerId: id }),
  z.object({
    type: z.literal('exec'),
    execId: id,
    command: z.string().check(z.minLength(1)),
    args: z.array(anyText()),
    gpuIndices: z.array(int(0)),
    env: z.record(z.string(), z.string()),
    /**
     * Under a pseudo-terminal of this size (`lease shell`): its input comes in `exec-stdin`, its window changes in
     * `exec-resize`, and its output (the terminal's, one stream) in `exec-output` on stdout. Absent: a plain exec.
     */
    tty: z.optional(z.object({ cols: winsize, rows: winsize })),
  }),
  z.object({ type: z.literal('exec-kill'), execId: id, signal: upTo(20) }),
  /** Input for an exec with a tty: base64 of the bytes, in order; `eof` closes its input (after `data`). */
  z.object({ type: z.literal('exec-stdin'), execId: id, data: anyText(), eof: z.optional(z.boolean()) }),
  /** The terminal of an exec with a tty changed size (its foreground processes get SIGWINCH). */
  z.object({ type: z.literal('exec-resize'), execId: id, cols: winsize, rows: winsize }),
  z.object({ type: z.literal('bye'), reason: anyText() }),
]);
export type BrokerMessage = z.infer<typeof brokerMessageSchema>;

/** A structured-clone value as it travels inside a message. */
export function encodeValue(value: unknown): string {
  return serialize(value).toString('base64');
}

export function decodeValue(text: string): unknown {
  return deserialize(Buffer.from(text, 'base64'));
}

/** Parses one frame from the other side; throws an Error naming what is wrong (the connection is then closed). */
export function parseFrame<T>(schema: z.ZodMiniType<T>, data: string): T {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    throw new Error('a frame that is not JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`a malformed message: ${issue?.path.join('.') || 'message'}: ${issue?.message ?? ''}`);
  }
  return parsed.data;
}

/** WebSocket close codes the broker uses (4000–4999 are the application's). */
export const CLOSE = {
  unauthorized: 4401,
  revoked: 4403,
  /** Another connection took this instance over (the agent reconnected). */
  replaced: 4409,
  protocol: 4400,
  shutdown: 1001,
} as const;
