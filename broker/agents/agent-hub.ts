/**
 * The broker's end of the agent protocol (`agent/protocol.ts`): it accepts agents' WebSocket connections on the
 * API's port (`/v1/agent/connect`), binds each to one instance, routes the runtime's orders to the agent of the
 * instance and each report back to the container or command it is about, and decides when an agent is lost.
 *
 * - Joining: the token is checked before the upgrade (401 otherwise); the `hello` then names the instance. A
 *   credential is bound to its instance; a join token bound to a launch joins only that launch's instances, each
 *   once; an unbound join token or an operator token joins a known instance, or registers one of your own machines
 *   (no instance id: it becomes `machines/<agent id>`). A new connection for an instance replaces the old one.
 * - Placeable: an instance whose agent is connected and healthy, and reports the GPUs the instance should have.
 * - Lost: no frame for MISSED_HEARTBEATS heartbeats. A dropped connection gets the rest of that time to come back;
 *   containers it still runs carry on. Once lost, its containers exit (`agent lost`) and their inputs are retried
 *   elsewhere by the runtime; a later report of theirs matches no attempt and is dropped, and when the agent comes
 *   back still running one of them, it is stopped (not adopted: its usage ended when the agent was lost).
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { type WebSocket, WebSocketServer } from 'ws';
import { batchFrames, sendFrame } from '../../agent/frames.ts';
import {
  type AgentMessage,
  agentMessageSchema,
  type BrokerMessage,
  CLOSE,
  DEFAULT_HEARTBEAT_MS,
  type GpuReport,
  type Health,
  type Hello,
  MAX_MESSAGE_BYTES,
  MISSED_HEARTBEATS,
  PROTOCOL_VERSION,
  parseFrame,
} from '../../agent/protocol.ts';
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import { bearerToken } from '../tokens.ts';
import type { AgentAuth, AgentRegistry } from './agent-registry.ts';

export const AGENT_CONNECT_PATH = '/v1/agent/connect';
/** Instance id prefix of a machine of your own. */
export const MACHINE_PREFIX = 'machines/';

/** What the fleet says an instance should have; undefined when the broker knows no such live instance. */
export interface ExpectedInstance {
  readonly gpu: string;
  readonly gpusPerInstance: number;
}

export interface AgentHubOptions {
  readonly registry: AgentRegistry;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly heartbeatMs?: number;
  /** The live instance `instanceId`, as the fleet has it. */
  readonly expected: (instanceId: string) => ExpectedInstance | undefined;
  /** The ids of the instances a launch (its idempotency key) created. */
  readonly instancesOfLaunch: (launchKey: string) => Promise<readonly string[]>;
  /**
   * Containers an agent runs that nobody here started (this broker restarted): returns those not taken over, which
   * are stopped. Absent: all are stopped.
   */
  readonly adopt?: (instanceId: string, containers: Hello['containers']) => Promise<readonly string[]>;
  /** Machines of your own (`--providers machines`); absent: an agent without an instance id is refused. */
  readonly machines?: {
    joined(instanceId: string, agentId: string, hello: Hello): Promise<unknown>;
  };
}

/** One connected agent. */
export interface AgentView {
  readonly agentId: string;
  readonly instanceId: string;
  readonly hostname: string;
  readonly addresses: readonly string[];
  readonly gpus: readonly GpuReport[];
  readonly labels: Readonly<Record<string, string>>;
  readonly usdPerHour: number | undefined;
  readonly health: Health;
  readonly connectedAtMs: number;
  readonly lastSeenAtMs: number;
  readonly placeable: boolean;
}

/** What a container or command tracked by the hub hears from its agent. */
export interface ReportSink {
  readonly instanceId: string;
  report(message: AgentMessage): void;
  /** The agent is lost (`lastSeenAtMs`: its last frame). */
  lost(reason: string, lastSeenAtMs: number): void;
}

interface Session {
  readonly agentId: string;
  readonly instanceId: string;
  readonly socket: WebSocket;
  readonly hello: Hello;
  health: Health;
  readonly connectedAtMs: number;
  lastSeenAtMs: number;
  watchdog: TimerHandle | undefined;
}

type ContainerReport = Extract<AgentMessage, { containerId: string }>;
type ExecReport = Extract<AgentMessage, { execId: string }>;

export class AgentHub {
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE_BYTES,
    perMessageDeflate: false,
  });
  private readonly heartbeatMs: number;
  private readonly sessions = new Map<string, Session>();
  /** Instances whose connection dropped, until they are back or lost. */
  private readonly dropped = new Map<string, { lastSeenAtMs: number; timer: TimerHandle }>();
  /** Containers declared lost with their agent, per instance, until the agent is back and no longer runs them. */
  private readonly lostContainers = new Map<string, Set<string>>();
  private readonly containers = new Map<string, ReportSink>();
  private readonly execs = new Map<string, ReportSink>();
  private readonly listeners = new Set<() => void>();
  /** Launch-bound joins being registered (`<token id> <instance id>`): each instance joins once. */
  private readonly boundJoins = new Set<string>();
  private closed = false;

  constructor(private readonly o: AgentHubOptions) {
    this.heartbeatMs = o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  }

  /** How long silence lasts before an agent is lost. */
  get lostAfterMs(): number {
    return this.heartbeatMs * MISSED_HEARTBEATS;
  }

  /** Serves agent connections on `server`'s upgrade requests to AGENT_CONNECT_PATH. */
  attach(server: Server): void {
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.upgrade(request, socket, head).catch((error: unknown) => {
        this.o.logger.error({ err: error }, 'agent connection failed');
        refuse(socket, 500, 'Internal Server Error');
      });
    });
  }

  /** Calls `listener` when an agent joins, is lost, or its health changes. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Where the instance's machine can be reached, as its agent reports it (first address, else its hostname). */
  addressOf(instanceId: string): string | undefined {
    const hello = this.sessions.get(instanceId)?.hello;
    return hello ? (hello.addresses?.[0] ?? hello.hostname) : undefined;
  }

  /** Whether the instance's agent said it can do `feature` (its hello's `features`, e.g. `tty`). */
  supports(instanceId: string, feature: string): boolean {
    return this.sessions.get(instanceId)?.hello.features?.includes(feature) === true;
  }

  placeable(instanceId: string): boolean {
    const session = this.sessions.get(instanceId);
    return session !== undefined && this.isPlaceable(session);
  }

  agents(): AgentView[] {
    return [...this.sessions.values()].map((s) => ({
      agentId: s.agentId,
      instanceId: s.instanceId,
      hostname: s.hello.hostname,
      addresses: s.hello.addresses ?? [],
      gpus: s.hello.gpus,
      labels: s.hello.labels,
      usdPerHour: s.hello.usdPerHour,
      health: s.health,
      connectedAtMs: s.connectedAtMs,
      lastSeenAtMs: s.lastSeenAtMs,
      placeable: this.isPlaceable(s),
    }));
  }

  /** Tracks a container until it exits: its agent's reports go to `sink`. */
  trackContainer(containerId: string, sink: ReportSink): void {
    this.containers.set(containerId, sink);
  }

  untrackContainer(containerId: string): void {
    this.containers.delete(containerId);
  }

  trackExec(execId: string, sink: ReportSink): void {
    this.execs.set(execId, sink);
  }

  untrackExec(execId: string): void {
    this.execs.delete(execId);
  }

  /** Sends an order to the instance's agent; false when it has no open connection (the order is not kept). */
  send(instanceId: string, message: BrokerMessage): boolean {
    const session = this.sessions.get(instanceId);
    if (!session || session.socket.readyState !== session.socket.OPEN) return false;
    sendFrame(session.socket, JSON.stringify(message));
    return true;
  }

  /** Whether an agent of this instance is connected or may still come back. */
  present(instanceId: string): boolean {
    return this.sessions.has(instanceId) || this.dropped.has(instanceId);
  }

  /** Disconnects the agent (its credential was revoked): its containers are lost at once. */
  disconnect(agentId: string, reason: string): void {
    for (const session of this.sessions.values())
      if (session.agentId === agentId) {
        this.sendTo(session, { type: 'bye', reason });
        session.socket.close(CLOSE.revoked, reason.slice(0, 120));
        this.endSession(session);
        this.declareLost(session.instanceId, reason, session.lastSeenAtMs);
      }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const { timer } of this.dropped.values()) timer.cancel();
    this.dropped.clear();
    for (const session of this.sessions.values()) session.watchdog?.cancel();
    this.sessions.clear();
    // Every connection, joined or still joining: a close frame, and no wait for an agent that does not answer it
    // (the server's close waits for the last connection to end).
    for (const socket of this.wss.clients) {
      socket.close(CLOSE.shutdown, 'broker stopping');
      setImmediate(() => socket.terminate());
    }
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private async upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://broker').pathname;
    if (path !== AGENT_CONNECT_PATH) return refuse(socket, 404, 'Not Found');
    if (this.closed) return refuse(socket, 503, 'Service Unavailable');
    const token = bearerToken(request.headers.authorization);
    const auth = token ? await this.o.registry.authenticate(token) : undefined;
    if (!auth) return refuse(socket, 401, 'Unauthorized');
    // Closed while the token was being checked: no new connection may outlive the hub.
    if (this.closed) return refuse(socket, 503, 'Service Unavailable');
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      batchFrames(ws, socket);
      this.accept(ws, auth);
    });
  }

  private accept(socket: WebSocket, auth: AgentAuth): void {
    let session: Session | undefined;
    const helloTimer = this.o.clock.setTimer(this.o.clock.now() + 10_000, () => {
      if (!session) socket.close(CLOSE.protocol, 'no hello within 10 s');
    });
    let joining = false;
    socket.on('message', (data, isBinary) => {
      let message: AgentMessage;
      try {
        if (isBinary) throw new Error('binary frames are not part of the protocol');
        message = parseFrame(agentMessageSchema, data.toString());
      } catch (error) {
        return socket.close(CLOSE.protocol, (error as Error).message.slice(0, 120));
      }
      if (session) return this.onMessage(session, message);
      if (message.type !== 'hello' || joining)
        return socket.close(CLOSE.protocol, 'the first message must be hello');
      joining = true;
      void this.join(socket, auth, message).then(
        (joined) => {
          helloTimer.cancel();
          session = joined;
        },
        (error: Error) => {
          helloTimer.cancel();
          this.o.logger.warn({ err: error }, 'agent refused');
          socket.close(CLOSE.revoked, error.message.slice(0, 120));
        },
      );
    });
    socket.on('close', () => {
      helloTimer.cancel();
      if (session && this.sessions.get(session.instanceId) === session) this.connectionDropped(session);
    });
    socket.on('error', (error) => this.o.logger.debug({ err: error }, 'agent socket error'));
  }

  /** Checks the hello against what the token may do, registers a new agent, and opens its session. */
  private async join(socket: WebSocket, auth: AgentAuth, hello: Hello): Promise<Session> {
    if (hello.protocol !== PROTOCOL_VERSION)
      throw new Error(`this broker speaks agent protocol ${PROTOCOL_VERSION}, the agent ${hello.protocol}`);
    let agentId: string;
    let instanceId: string;
    let credential: string | undefined;
    if (auth.kind === 'agent') {
      if (
        hello.instanceId &&
        !sameInstanceId(hello.instanceId, auth.instanceId) &&
        !auth.instanceId.startsWith(MACHINE_PREFIX)
      )
        throw new Error(`this credential belongs to instance ${auth.instanceId}`);
      agentId = auth.agentId;
      instanceId = auth.instanceId;
    } else {
      // The instance as its launch recorded it (an agent may name an Azure VM in another case).
      let named = hello.instanceId;
      let claim: string | undefined;
      if (auth.kind === 'join' && auth.boundTo !== null) {
        const claimed = hello.instanceId;
        if (!claimed) throw new Error('this join token is for a launch; name the instance');
        named = (await this.o.instancesOfLaunch(auth.boundTo)).find((id) => sameInstanceId(id, claimed));
        if (!named) throw new Error(`this join token is not for instance ${claimed}`);
        claim = `${auth.tokenId} ${named}`;
        if (await this.o.registry.alreadyJoined(auth.tokenId, named))
          throw new Error(`this join token was used for instance ${named} already`);
      }
      const isMachine = !named;
      if (isMachine && !this.o.machines)
        throw new Error(
          'this broker takes no machines of your own (start it with --providers …,machines), and no instance id was given',
        );
      if (!isMachine && !this.o.expected(named as string)) throw new Error(`no live instance ${named}`);
      agentId = this.o.registry.newAgentId();
      instanceId = isMachine ? `${MACHINE_PREFIX}${agentId}` : (named as string);
      // Two connections that passed the check above at once: one of them joins.
      if (claim !== undefined && this.boundJoins.has(claim))
        throw new Error(`this join token was used for instance ${named} already`);
      if (claim !== undefined) this.boundJoins.add(claim);
      try {
        ({ credential } = await this.o.registry.register({
          id: agentId,
          instanceId,
          hostname: hello.hostname,
          labels: hello.labels,
          joinedWith: auth.kind === 'join' ? `join:${auth.tokenId}` : `operator:${auth.tenantId}`,
        }));
      } finally {
        if (claim !== undefined) this.boundJoins.delete(claim);
      }
    }
    if (instanceId.startsWith(MACHINE_PREFIX)) {
      if (!this.o.machines) throw new Error('this broker takes no machines of your own any more');
      await this.o.machines.joined(instanceId, agentId, hello);
    }
    if (socket.readyState !== socket.OPEN) throw new Error('the connection closed while joining');
    const now = this.o.clock.now();
    const previous = this.sessions.get(instanceId);
    if (previous) {
      this.endSession(previous);
      previous.socket.close(CLOSE.replaced, 'another connection took this instance over');
    }
    const wasDropped = this.dropped.get(instanceId);
    wasDropped?.timer.cancel();
    this.dropped.delete(instanceId);
    const session: Session = {
      agentId,
      instanceId,
      socket,
      hello,
      health: hello.health,
      connectedAtMs: now,
      lastSeenAtMs: now,
      watchdog: undefined,
    };
    this.sessions.set(instanceId, session);
    this.sendTo(session, {
      type: 'welcome',
      agentId,
      instanceId,
      heartbeatMs: this.heartbeatMs,
      ...(credential ? { credential } : {}),
    });
    this.watch(session);
    this.reconcileContainers(session);
    this.o.logger.info({ agentId, instanceId, hostname: hello.hostname }, 'agent joined');
    this.changed();
    return session;
  }

  /**
   * After a reconnect: containers the agent runs that nobody here started are adopted or stopped; those declared
   * lost with it (a partition: their inputs ran elsewhere, their usage ended at the loss) are stopped; containers
   * started here that the agent does not list ended while it was away (their last reports follow the welcome, so
   * they are given one heartbeat to arrive before they count as lost).
   */
  private reconcileContainers(session: Session): void {
    const listed = new Set(session.hello.containers.map((c) => c.containerId));
    const stop = (ids: readonly string[]) => {
      for (const containerId of ids)
        if (this.sessions.get(session.instanceId) === session)
          this.sendTo(session, { type: 'stop', containerId });
    };
    // Kept while the agent still lists them: a connection that drops before the stop arrives does not adopt them.
    const lost = [...(this.lostContainers.get(session.instanceId) ?? [])].filter((id) => listed.has(id));
    if (lost.length > 0) this.lostContainers.set(session.instanceId, new Set(lost));
    else this.lostContainers.delete(session.instanceId);
    stop(lost);
    const unknown = session.hello.containers.filter(
      (c) => !this.containers.has(c.containerId) && !lost.includes(c.containerId),
    );
    if (unknown.length > 0) {
      // After a restart of this broker the runtime may take them over (warm containers stay warm).
      if (this.o.adopt)
        void this.o.adopt(session.instanceId, unknown).then(stop, (error: unknown) => {
          this.o.logger.error({ err: error }, 'cannot adopt containers');
          stop(unknown.map((c) => c.containerId));
        });
      else stop(unknown.map((c) => c.containerId));
    }
    const missing = [...this.containers].filter(
      ([containerId, sink]) => sink.instanceId === session.instanceId && !listed.has(containerId),
    );
    if (missing.length === 0) return;
    this.o.clock.setTimer(this.o.clock.now() + this.heartbeatMs, () => {
      for (const [containerId, sink] of missing)
        if (this.containers.get(containerId) === sink)
          sink.lost('the agent no longer runs it (it restarted while disconnected)', session.lastSeenAtMs);
    });
  }

  private onMessage(session: Session, message: AgentMessage): void {
    session.lastSeenAtMs = this.o.clock.now();
    switch (message.type) {
      case 'hello':
        session.socket.close(CLOSE.protocol, 'hello twice');
        return;
      case 'heartbeat': {
        const wasOk = session.health.ok;
        session.health = message.health;
        if (wasOk !== message.health.ok) {
          this.o.logger.warn(
            { instanceId: session.instanceId, health: message.health },
            'agent health changed',
          );
          this.changed();
        }
        return;
      }
      case 'exec-output':
      case 'exec-exit':
        this.routeExec(session, message);
        return;
      default:
        this.routeContainer(session, message);
        return;
    }
  }

  private routeContainer(session: Session, message: ContainerReport): void {
    const sink = this.containers.get(message.containerId);
    // An agent speaks only of containers placed on its own instance.
    if (sink?.instanceId === session.instanceId) sink.report(message);
  }

  private routeExec(session: Session, message: ExecReport): void {
    const sink = this.execs.get(message.execId);
    if (sink?.instanceId === session.instanceId) sink.report(message);
  }

  /** Checks every heartbeat that the agent was heard from within the last MISSED_HEARTBEATS heartbeats. */
  private watch(session: Session): void {
    session.watchdog = this.o.clock.setTimer(this.o.clock.now() + this.heartbeatMs, () => {
      if (this.sessions.get(session.instanceId) !== session) return;
      if (this.o.clock.now() - session.lastSeenAtMs < this.lostAfterMs) return this.watch(session);
      // Silent, as far as this timer can tell: but after a long turn of this process (a big query, a bundle)
      // timers run before the frames that arrived meanwhile are read. Those are read first, then it decides.
      this.o.clock.setTimer(this.o.clock.now(), () => {
        if (this.sessions.get(session.instanceId) !== session) return;
        if (this.o.clock.now() - session.lastSeenAtMs < this.lostAfterMs) return this.watch(session);
        this.o.logger.warn({ instanceId: session.instanceId }, 'agent silent; dropping its connection');
        session.socket.terminate();
        this.connectionDropped(session);
      });
    });
  }

  private connectionDropped(session: Session): void {
    this.endSession(session);
    const lostAtMs = session.lastSeenAtMs + this.lostAfterMs;
    const timer = this.o.clock.setTimer(Math.max(lostAtMs, this.o.clock.now()), () => {
      this.dropped.delete(session.instanceId);
      this.declareLost(
        session.instanceId,
        `agent lost: no word from it for ${this.lostAfterMs} ms`,
        session.lastSeenAtMs,
      );
    });
    this.dropped.set(session.instanceId, { lastSeenAtMs: session.lastSeenAtMs, timer });
    this.changed();
  }

  private endSession(session: Session): void {
    session.watchdog?.cancel();
    if (this.sessions.get(session.instanceId) === session) this.sessions.delete(session.instanceId);
  }

  private declareLost(instanceId: string, reason: string, lastSeenAtMs: number): void {
    if (this.sessions.has(instanceId)) return;
    this.o.logger.warn({ instanceId, reason }, 'agent lost');
    // Instances that ended will not come back to claim theirs.
    for (const id of this.lostContainers.keys())
      if (!id.startsWith(MACHINE_PREFIX) && !this.o.expected(id)) this.lostContainers.delete(id);
    const lost = this.lostContainers.get(instanceId) ?? new Set<string>();
    for (const [containerId, sink] of this.containers)
      if (sink.instanceId === instanceId) lost.add(containerId);
    if (lost.size > 0) this.lostContainers.set(instanceId, lost);
    for (const sink of [...this.containers.values(), ...this.execs.values()])
      if (sink.instanceId === instanceId) sink.lost(reason, lastSeenAtMs);
    this.changed();
  }

  private isPlaceable(session: Session): boolean {
    if (!session.health.ok || session.socket.readyState !== session.socket.OPEN) return false;
    if (session.instanceId.startsWith(MACHINE_PREFIX)) return true;
    const expected = this.o.expected(session.instanceId);
    if (!expected) return false;
    const matching = session.hello.gpus.filter((g) => g.name === expected.gpu).length;
    return matching >= expected.gpusPerInstance;
  }

  private sendTo(session: Session, message: BrokerMessage): void {
    if (session.socket.readyState === session.socket.OPEN) sendFrame(session.socket, JSON.stringify(message));
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

/**
 * Whether two names are of the same instance. Azure's ARM resource ids compare case-insensitively (its metadata
 * service and its API may differ in case, as in `resourceGroups`); other clouds' ids compare exactly.
 */
export function sameInstanceId(a: string, b: string): boolean {
  if (a === b) return true;
  return a.length === b.length && /^\/subscriptions\//i.test(a) && a.toLowerCase() === b.toLowerCase();
}

function refuse(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
}
