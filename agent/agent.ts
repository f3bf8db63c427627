/**
 * `gpubroker agent`: one machine's side of the agent protocol (`protocol.ts`). It dials out to the broker (no
 * inbound port), says what it has, and carries out the runtime's orders: it starts containers with its executor,
 * runs inputs in them, stops them, runs `lease exec` commands, and reports every outcome. It decides nothing.
 *
 * The connection may drop at any time: containers keep running, reports made meanwhile wait in an outbox and go
 * out after the next `welcome` (the broker drops those it no longer waits for), and the agent dials again with
 * backoff (250 ms doubling to 10 s, with jitter). A ping at every heartbeat finds a broker that stopped answering
 * without closing the socket. Only a refused credential or a revocation ends the agent.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, hostname, networkInterfaces, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pino, { type Logger } from 'pino';
import WebSocket from 'ws';
import { type Clock, RealClock, type TimerHandle } from '../lib/clock.ts';
import { Random } from '../lib/random.ts';
import {
  ContainerExitedError,
  type ContainerHandle,
  type Executor,
  InputNotStartedError,
  type LogLine,
  RemoteError,
} from '../runtime/executor/executor.ts';
import type { BundleCache } from './bundle-cache.ts';
import type { BubblewrapSandbox } from './executor/sandbox/bubblewrap.ts';
import { batchFrames, sendFrame } from './frames.ts';
import type { GpuInventory, GpuSource } from './gpus.ts';
import type { LayerCache } from './layer-cache.ts';
import { type RunningExec, startExec } from './lease-exec.ts';
import {
  AGENT_FEATURES,
  type AgentMessage,
  type BrokerMessage,
  brokerMessageSchema,
  CLOSE,
  type ContainerOrder,
  DEFAULT_HEARTBEAT_MS,
  decodeValue,
  encodeValue,
  MAX_MESSAGE_BYTES,
  MISSED_HEARTBEATS,
  PROTOCOL_VERSION,
  parseFrame,
} from './protocol.ts';
import { StartGate } from './start-gate.ts';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  /** `http://host:port` of the broker (`ws:` is derived). */
  readonly brokerUrl: string;
  /** A join token, an operator token, or this agent's credential. */
  readonly token: string;
  /** Where the credential the broker hands out on joining is kept (mode 600), so a restart needs no new token. */
  readonly credentialFile?: string;
  /** The provider's id of this instance; absent for a machine of your own. */
  readonly instanceId?: string;
  readonly gpus: GpuSource;
  readonly labels?: Readonly<Record<string, string>>;
  readonly usdPerHour?: number;
  readonly hostname?: string;
  /** Where the machine can be reached (default: its non-internal addresses). */
  readonly addresses?: readonly string[];
  readonly executor: Executor;
  readonly bundles: BundleCache;
  /** Image layers (npm packages) by content; absent: containers whose image has a layer fail to start. */
  readonly layers?: LayerCache;
  /** `lease exec` commands run in it (their scratch directories under `execRoot`); absent: plain processes. */
  readonly sandbox?: BubblewrapSandbox;
  readonly execRoot?: string;
  /** Bounds concurrent cold starts on the machine (shared by every agent of an agent host). */
  readonly startGate?: StartGate;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** The broker refused this agent for good (revoked, bad token): the caller stops it and exits. */
  readonly onFatal?: (message: string) => void;
  /** The first order to start a container arrived: the agent has work from now on (bin/gpubroker.js). */
  readonly onFirstContainer?: () => void;
}

interface RunningContainer {
  readonly handle: ContainerHandle;
  readonly order: ContainerOrder;
  ready: boolean;
  /** How long inputs ran that ended and are not reported yet (sent with their result). */
  readonly ranMs: Map<string, number>;
}

const MAX_OUTBOX = 100_000;
/** A container's log lines of one turn leave in one frame, or sooner once they hold this many characters. */
const MAX_LOG_BATCH_CHARS = 256 * 1024;
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 10_000;

export class Agent {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly random = new Random(randomBytes(4).readUInt32LE(0));
  private socket: WebSocket | undefined;
  private token: string;
  private welcomed = false;
  private hadContainer = false;
  private closed = false;
  private backoffMs = FIRST_BACKOFF_MS;
  private heartbeatMs = DEFAULT_HEARTBEAT_MS;
  private heartbeatTimer: TimerHandle | undefined;
  private reconnectTimer: TimerHandle | undefined;
  private unansweredPings = 0;
  private readonly containers = new Map<string, RunningContainer>();
  /** Log lines of this turn not sent yet, per container (see `log`). */
  private readonly logBatches = new Map<
    string,
    { lines: { stream: LogLine['stream']; text: string; atMs: number }[]; chars: number }
  >();
  /** Containers ordered but not started yet (fetching the bundle, waiting for the start gate). */
  private readonly starting = new Set<string>();
  /** Of those, the ones the broker stopped meanwhile. */
  private readonly stopBeforeStart = new Set<string>();
  private readonly execs = new Map<string, RunningExec>();
  /** Reports made while disconnected, sent after the next welcome. */
  private readonly outbox: AgentMessage[] = [];
  private inventory: GpuInventory | undefined;
  private readonly startGate: StartGate;
  /** Resolves at the first welcome. */
  readonly joined: Promise<{ agentId: string; instanceId: string }>;
  private markJoined!: (value: { agentId: string; instanceId: string }) => void;
  agentId: string | undefined;
  instanceId: string | undefined;

  constructor(private readonly o: AgentOptions) {
    this.clock = o.clock ?? new RealClock();
    this.logger = o.logger ?? pino({ level: process.env.GPUBROKER_LOG ?? 'silent' });
    this.token = readCredential(o.credentialFile) ?? o.token;
    this.startGate = o.startGate ?? new StartGate(Math.max(2, availableParallelism()));
    this.joined = new Promise((resolve) => {
      this.markJoined = resolve;
    });
  }

  async start(): Promise<void> {
    this.inventory = await this.o.gpus();
    this.connect();
  }

  /** Closes the connection and stops every container and command (a clean shutdown of the machine's agent). */
  async close(): Promise<void> {
    this.closed = true;
    this.heartbeatTimer?.cancel();
    this.reconnectTimer?.cancel();
    for (const running of this.execs.values()) running.kill('SIGKILL');
    await Promise.all([...this.containers.values()].map((c) => c.handle.stop().catch(() => undefined)));
    this.socket?.close(CLOSE.shutdown, 'agent stopping');
  }

  /** Drops the connection without stopping containers (tests: a network fault; the agent dials again). */
  dropConnection(): void {
    this.socket?.terminate();
  }

  private connect(): void {
    if (this.closed) return;
    const url = `${this.o.brokerUrl.replace(/^http/, 'ws').replace(/\/$/, '')}/v1/agent/connect`;
    const socket = new WebSocket(url, {
      headers: { authorization: `Bearer ${this.token}` },
      maxPayload: MAX_MESSAGE_BYTES,
      handshakeTimeout: 10_000,
      perMessageDeflate: false,
    });
    this.socket = socket;
    this.welcomed = false;
    socket.on('upgrade', (response) => batchFrames(socket, response.socket));
    socket.on('open', () => this.sendHello(socket));
    socket.on('message', (data, isBinary) => {
      if (isBinary) return socket.close(CLOSE.protocol, 'binary frames are not part of the protocol');
      let message: BrokerMessage;
      try {
        message = parseFrame(brokerMessageSchema, data.toString());
      } catch (error) {
        this.logger.error({ err: error }, 'malformed message from the broker');
        return socket.close(CLOSE.protocol, (error as Error).message.slice(0, 120));
      }
      this.onMessage(socket, message);
    });
    socket.on('pong', () => {
      this.unansweredPings = 0;
    });
    socket.on('unexpected-response', (_request, response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      if (status === 401 || status === 403) return this.fatal(`the broker refused the token (${status})`);
      this.logger.warn({ status }, 'the broker did not accept the connection; retrying');
      socket.terminate();
    });
    socket.on('error', (error) => this.logger.debug({ err: error }, 'connection error'));
    socket.on('close', (code, reason) => this.onClose(socket, code, reason.toString()));
  }

  private onClose(socket: WebSocket, code: number, reason: string): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    this.welcomed = false;
    this.heartbeatTimer?.cancel();
    if (this.closed) return;
    if (code === CLOSE.revoked || code === CLOSE.unauthorized) {
      this.fatal(`the broker ended this agent: ${reason || 'credential refused'}`);
      return;
    }
    const delay = Math.round(this.backoffMs * (0.75 + 0.5 * this.random.next()));
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    this.logger.info({ code, reason, retryInMs: delay }, 'disconnected from the broker');
    this.reconnectTimer = this.clock.setTimer(this.clock.now() + delay, () => this.connect());
  }

  private fatal(message: string): void {
    if (this.closed) return;
    this.logger.error(message);
    void this.close().then(() => this.o.onFatal?.(message));
  }

  private sendHello(socket: WebSocket): void {
    const inventory = this.inventory as GpuInventory;
    const hello: AgentMessage = {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      agentVersion: AGENT_VERSION,
      ...(this.o.instanceId ? { instanceId: this.o.instanceId } : {}),
      hostname: this.o.hostname ?? hostname(),
      addresses: this.o.addresses ? [...this.o.addresses] : machineAddresses(),
      gpus: [...inventory.gpus],
      health: inventory.health,
      labels: { ...(this.o.labels ?? {}) },
      ...(this.o.usdPerHour !== undefined ? { usdPerHour: this.o.usdPerHour } : {}),
      features: [...AGENT_FEATURES],
      containers: [...this.containers].map(([containerId, c]) => ({
        containerId,
        ready: c.ready,
        order: c.order,
      })),
    };
    socket.send(JSON.stringify(hello));
  }

  private onMessage(socket: WebSocket, message: BrokerMessage): void {
    switch (message.type) {
      case 'welcome':
        this.onWelcome(socket, message);
        return;
      case 'start':
        return void this.startContainer(message.container);
      case 'invoke':
        this.invoke(message);
        return;
      case 'stop': {
        const running = this.containers.get(message.containerId);
        // One still waiting for its turn to start (or for its bundle) is not started at all.
        if (running) void running.handle.stop();
        else if (this.starting.has(message.containerId)) this.stopBeforeStart.add(message.containerId);
        return;
      }
      case 'exec':
        this.exec(message);
        return;
      case 'exec-kill':
        return void this.execs.get(message.execId)?.kill(message.signal as NodeJS.Signals);
      case 'exec-stdin': {
        const terminal = this.execs.get(message.execId)?.terminal;
        if (message.data !== '') terminal?.write(Buffer.from(message.data, 'base64'));
        if (message.eof) terminal?.end();
        return;
      }
      case 'exec-resize':
        return void this.execs.get(message.execId)?.terminal?.resize(message);
      case 'bye':
        this.logger.warn({ reason: message.reason }, 'the broker said goodbye');
        return;
    }
  }

  private onWelcome(socket: WebSocket, message: Extract<BrokerMessage, { type: 'welcome' }>): void {
    this.welcomed = true;
    this.backoffMs = FIRST_BACKOFF_MS;
    this.agentId = message.agentId;
    this.instanceId = message.instanceId;
    this.heartbeatMs = message.heartbeatMs;
    if (message.credential) {
      this.token = message.credential;
      writeCredential(this.o.credentialFile, message.credential);
    }
    this.logger.info({ agentId: message.agentId, instanceId: message.instanceId }, 'joined the broker');
    for (const report of this.outbox.splice(0)) sendFrame(socket, JSON.stringify(report));
    this.unansweredPings = 0;
    this.scheduleHeartbeat(socket);
    this.markJoined({ agentId: message.agentId, instanceId: message.instanceId });
  }

  private scheduleHeartbeat(socket: WebSocket): void {
    this.heartbeatTimer = this.clock.setTimer(this.clock.now() + this.heartbeatMs, () => {
      if (this.socket !== socket || this.closed) return;
      if (++this.unansweredPings > MISSED_HEARTBEATS) {
        // Pongs that arrived during a long turn are read before deciding (timers run before I/O).
        this.clock.setTimer(this.clock.now(), () => {
          if (this.socket !== socket || this.unansweredPings <= MISSED_HEARTBEATS) return;
          this.logger.warn('the broker stopped answering; dialling again');
          socket.terminate();
        });
      }
      socket.ping();
      void this.o.gpus().then((inventory) => {
        this.inventory = inventory;
        this.send({ type: 'heartbeat', health: inventory.health });
      });
      this.scheduleHeartbeat(socket);
    });
  }

  /** Sends now when connected and welcomed; otherwise keeps reports for later and drops the rest. */
  private send(message: AgentMessage): void {
    const socket = this.socket;
    if (socket && this.welcomed && socket.readyState === WebSocket.OPEN) {
      sendFrame(socket, JSON.stringify(message));
      return;
    }
    if (
      message.type === 'heartbeat' ||
      message.type === 'log' ||
      message.type === 'logs' ||
      message.type === 'exec-output'
    )
      return;
    if (this.outbox.length < MAX_OUTBOX) this.outbox.push(message);
  }

  /**
   * A container's output goes in one `logs` frame per container and turn of the event loop (a frame per line was
   * a JSON envelope, a parse and a check on the broker for each of a map's 10,000 log lines); a turn's lines past
   * MAX_LOG_BATCH_CHARS leave at once.
   */
  private log(containerId: string, line: LogLine): void {
    let batch = this.logBatches.get(containerId);
    if (!batch) {
      batch = { lines: [], chars: 0 };
      this.logBatches.set(containerId, batch);
      if (this.logBatches.size === 1) setImmediate(() => this.flushLogs());
    }
    batch.lines.push({ stream: line.stream, text: line.text, atMs: line.atMs });
    batch.chars += line.text.length;
    if (batch.chars >= MAX_LOG_BATCH_CHARS) this.flushLog(containerId);
  }

  private flushLogs(): void {
    for (const containerId of [...this.logBatches.keys()]) this.flushLog(containerId);
  }

  private flushLog(containerId: string): void {
    const batch = this.logBatches.get(containerId);
    if (!batch) return;
    this.logBatches.delete(containerId);
    this.send({ type: 'logs', containerId, lines: batch.lines });
  }

  private async startContainer(order: ContainerOrder): Promise<void> {
    if (this.containers.has(order.containerId) || this.starting.has(order.containerId)) return;
    if (!this.hadContainer) {
      this.hadContainer = true;
      this.o.onFirstContainer?.();
    }
    this.starting.add(order.containerId);
    try {
      await this.startContainerNow(order);
    } finally {
      this.starting.delete(order.containerId);
      this.stopBeforeStart.delete(order.containerId);
    }
  }

  private async startContainerNow(order: ContainerOrder): Promise<void> {
    let bundlePath: string;
    let nodeModulesPath: string | undefined;
    let fetching = 'bundle';
    try {
      bundlePath = await this.o.bundles.pathOf(order.bundle, this.o.brokerUrl, this.token);
      if (order.layer) {
        fetching = 'image layer';
        if (!this.o.layers) throw new Error('this agent keeps no image layers');
        nodeModulesPath = await this.o.layers.nodeModulesOf(
          { tenantId: order.tenantId, ...order.layer },
          this.o.brokerUrl,
          this.token,
        );
      }
    } catch (error) {
      this.send({
        type: 'start-failed',
        containerId: order.containerId,
        message: `cannot fetch its ${fetching}: ${(error as Error).message}`,
      });
      this.send({
        type: 'exited',
        containerId: order.containerId,
        code: null,
        signal: null,
        reason: `failed to fetch its ${fetching}`,
      });
      return;
    }
    const leave = await this.startGate.enter();
    if (this.closed) return leave();
    if (this.stopBeforeStart.has(order.containerId)) {
      leave();
      this.send({
        type: 'exited',
        containerId: order.containerId,
        code: null,
        signal: null,
        reason: 'stopped before it started',
      });
      return;
    }
    let handle: ContainerHandle;
    try {
      handle = this.o.executor.start({
        containerId: order.containerId,
        tenantId: order.tenantId,
        app: order.app,
        functionName: order.functionName,
        bundleId: `${order.bundle.tenantId}/${order.bundle.sha256}`,
        bundlePath,
        instanceId: this.instanceId ?? '',
        gpuIndices: order.gpuIndices,
        env: order.env,
        concurrency: order.concurrency,
        cpu: order.cpu,
        memoryMiB: order.memoryMiB,
        network: order.network,
        ...(order.layer ? { layer: order.layer } : {}),
        ...(nodeModulesPath ? { nodeModulesPath } : {}),
      });
    } catch (error) {
      leave();
      const message = (error as Error).message;
      this.send({ type: 'start-failed', containerId: order.containerId, message });
      this.send({
        type: 'exited',
        containerId: order.containerId,
        code: null,
        signal: null,
        reason: message,
      });
      return;
    }
    void handle.ready.then(leave, leave);
    const running: RunningContainer = { handle, order, ready: false, ranMs: new Map() };
    handle.onInputRan?.((callId, ms) => running.ranMs.set(callId, ms));
    this.containers.set(order.containerId, running);
    handle.onLog((line) => this.log(order.containerId, line));
    handle.ready.then(
      () => {
        running.ready = true;
        this.send({ type: 'ready', containerId: order.containerId });
      },
      (error: Error) =>
        this.send({
          type: 'start-failed',
          containerId: order.containerId,
          message: error.message,
          ...(error instanceof RemoteError && error.remoteStack ? { stack: error.remoteStack } : {}),
          name: error.name,
        }),
    );
    void handle.exited.then((exit) => {
      this.containers.delete(order.containerId);
      // Its last lines first: the broker forgets a container once it has exited.
      this.flushLog(order.containerId);
      this.send({ type: 'exited', containerId: order.containerId, ...exit });
    });
  }

  private invoke(message: Extract<BrokerMessage, { type: 'invoke' }>): void {
    const { containerId, callId, attempt } = message;
    const running = this.containers.get(containerId);
    if (!running) {
      this.send({
        type: 'failed',
        containerId,
        callId,
        attempt,
        kind: 'exited',
        message: 'the container is not running on this machine',
      });
      return;
    }
    let args: unknown[];
    try {
      args = decodeValue(message.args) as unknown[];
    } catch (error) {
      this.send({
        type: 'failed',
        containerId,
        callId,
        attempt,
        kind: 'refused',
        message: (error as Error).message,
      });
      return;
    }
    running.handle
      .invoke(callId, args, message.timeoutMs !== undefined ? { timeoutMs: message.timeoutMs } : {})
      .then(
        (value) => {
          const ranMs = running.ranMs.get(callId);
          running.ranMs.delete(callId);
          let encoded: string;
          try {
            encoded = encodeValue(value);
          } catch (error) {
            return this.send({
              type: 'failed',
              containerId,
              callId,
              attempt,
              kind: 'refused',
              message: `the result cannot be sent: ${(error as Error).message}`,
            });
          }
          this.send({
            type: 'result',
            containerId,
            callId,
            attempt,
            value: encoded,
            ...(ranMs === undefined ? {} : { ranMs }),
          });
        },
        (error: Error) => {
          const ranMs = running.ranMs.get(callId);
          running.ranMs.delete(callId);
          const kind =
            error instanceof RemoteError
              ? 'remote'
              : error instanceof InputNotStartedError
                ? 'not-started'
                : error instanceof ContainerExitedError
                  ? 'exited'
                  : 'refused';
          this.send({
            type: 'failed',
            containerId,
            callId,
            attempt,
            kind,
            message: error instanceof ContainerExitedError ? error.reason : error.message,
            ...(ranMs === undefined ? {} : { ranMs }),
            ...(error instanceof RemoteError && error.remoteStack ? { stack: error.remoteStack } : {}),
            name: error instanceof RemoteError ? error.remoteName : error.name,
          });
        },
      );
  }

  /**
   * `lease exec`: the command with exactly the leased GPUs visible, its output streamed back as it comes (`lease
   * shell`: the same under a pseudo-terminal, see lease-exec.ts).
   */
  private exec(message: Extract<BrokerMessage, { type: 'exec' }>): void {
    const { execId } = message;
    let running: RunningExec;
    try {
      running = startExec(message, {
        ...(this.o.sandbox ? { sandbox: this.o.sandbox } : {}),
        workRoot: this.o.execRoot ?? join(tmpdir(), 'gpubroker-exec'),
        machineGpus: this.inventory?.gpus.length ?? message.gpuIndices.length,
      });
    } catch (error) {
      this.send({ type: 'exec-exit', execId, code: null, signal: null, error: (error as Error).message });
      return;
    }
    const { child } = running;
    this.execs.set(execId, running);
    const forward = (stream: 'stdout' | 'stderr') => (chunk: Buffer) =>
      this.send({ type: 'exec-output', execId, stream, data: chunk.toString('base64') });
    child.stdout?.on('data', forward('stdout'));
    child.stderr?.on('data', forward('stderr'));
    let spawnError: string | undefined;
    child.on('error', (error) => {
      spawnError = error.message;
    });
    child.on('close', (code, signal) => {
      this.execs.delete(execId);
      void running.cleanUp();
      this.send({
        type: 'exec-exit',
        execId,
        code,
        signal,
        ...(spawnError ? { error: spawnError } : {}),
      });
    });
  }
}

/** This machine's addresses other machines may reach: non-internal IPv4 first, then IPv6. */
function machineAddresses(): string[] {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  const external = all.filter((a) => !a.internal);
  return [...external.filter((a) => a.family === 'IPv4'), ...external.filter((a) => a.family === 'IPv6')]
    .map((a) => a.address)
    .slice(0, 32);
}

function readCredential(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function writeCredential(file: string | undefined, credential: string): void {
  if (!file) return;
  mkdirSync(dirname(file), { recursive: true });
  const partial = `${file}.partial`;
  writeFileSync(partial, `${credential}\n`, { mode: 0o600 });
  renameSync(partial, file);
}
