/**
 * The runtime's Executor in the broker: each container is started by the agent of the instance it was placed on
 * and is known here only through the hub (`agent-hub.ts`). The handle keeps the attempts it is waiting for,
 * fenced by (container, call, attempt): a report that matches none (late, repeated, from a replaced connection)
 * changes nothing. When the agent is lost the container exits with the reason, and `exit.atMs` is the agent's last
 * frame, so that its usage ends where the machine was last known to run it.
 */
import { whyNotSendable } from '../../agent/executor/sendable.mjs';
import { type AgentMessage, decodeValue, encodeValue } from '../../agent/protocol.ts';
import type { Clock } from '../../lib/clock.ts';
import {
  type ContainerExit,
  ContainerExitedError,
  type ContainerHandle,
  type ContainerSpec,
  type Executor,
  InputNotStartedError,
  type LogLine,
  RemoteError,
} from '../../runtime/executor/executor.ts';
import type { AgentHub, ReportSink } from './agent-hub.ts';

export class AgentExecutor implements Executor {
  /** The agents' executors hold inputs beyond a container's concurrency next to it (LocalExecutor). */
  readonly queuesInputs = true;
  private readonly running = new Set<RemoteContainer>();
  private closed = false;

  constructor(
    private readonly hub: AgentHub,
    private readonly clock: Clock,
  ) {}

  start(spec: ContainerSpec): ContainerHandle {
    if (this.closed) throw new Error('the executor is closed');
    const [tenantId = '', sha256 = ''] = spec.bundleId.split('/');
    const container = new RemoteContainer(spec, this.hub, this.clock);
    this.running.add(container);
    void container.exited.then(() => this.running.delete(container));
    const sent = this.hub.send(spec.instanceId, {
      type: 'start',
      container: {
        containerId: spec.containerId,
        tenantId: spec.tenantId,
        app: spec.app,
        functionName: spec.functionName,
        bundle: { tenantId, sha256 },
        gpuIndices: [...spec.gpuIndices],
        env: { ...spec.env },
        concurrency: spec.concurrency,
        cpu: spec.cpu,
        memoryMiB: spec.memoryMiB,
        network: spec.network,
        ...(spec.layer ? { layer: { ...spec.layer } } : {}),
      },
    });
    if (!sent && !this.hub.present(spec.instanceId))
      container.lost(`no agent on instance ${spec.instanceId}`, this.clock.now());
    return container;
  }

  adopt(spec: ContainerSpec, ready: boolean): ContainerHandle {
    if (this.closed) throw new Error('the executor is closed');
    const container = new RemoteContainer(spec, this.hub, this.clock);
    this.running.add(container);
    void container.exited.then(() => this.running.delete(container));
    if (ready) container.report({ type: 'ready', containerId: spec.containerId });
    return container;
  }

  /** Stops every container started here (their agents stop them). */
  async close(): Promise<void> {
    this.closed = true;
    // An agent that cannot be reached cannot confirm: the broker stops waiting after a moment.
    await Promise.all(
      [...this.running].map((c) =>
        Promise.race([c.stop(), new Promise((resolve) => setTimeoutUnref(resolve, 2_000))]),
      ),
    );
  }
}

function setTimeoutUnref(callback: (value: unknown) => void, ms: number): void {
  // Closing must not wait on the virtual clock of a test that stopped advancing it, so this one timer is real.
  (globalThis.setTimeout as (cb: () => void, ms: number) => { unref?: () => void })(
    () => callback(undefined),
    ms,
  ).unref?.();
}

interface Attempt {
  readonly attempt: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

type State = 'starting' | 'ready' | 'stopping' | 'exited';

class RemoteContainer implements ContainerHandle, ReportSink {
  readonly containerId: string;
  readonly instanceId: string;
  private readonly concurrency: number;
  readonly ready: Promise<void>;
  readonly exited: Promise<ContainerExit>;
  private state: State = 'starting';
  private markReady!: { resolve(): void; reject(error: Error): void };
  private markExited!: (exit: ContainerExit) => void;
  private readonly waiting = new Map<string, Attempt>();
  private readonly attempts = new Map<string, number>();
  private readonly listeners = new Set<(line: LogLine) => void>();
  private readonly ranListeners = new Set<(callId: string, ranMs: number) => void>();
  private exit: ContainerExit | undefined;

  constructor(
    spec: ContainerSpec,
    private readonly hub: AgentHub,
    private readonly clock: Clock,
  ) {
    this.containerId = spec.containerId;
    this.instanceId = spec.instanceId;
    this.concurrency = spec.concurrency;
    this.ready = new Promise<void>((resolve, reject) => {
      this.markReady = { resolve, reject };
    });
    this.ready.catch(() => {});
    this.exited = new Promise((resolve) => {
      this.markExited = resolve;
    });
    hub.trackContainer(this.containerId, this);
  }

  async invoke(
    callId: string,
    args: readonly unknown[],
    options: { timeoutMs?: number } = {},
  ): Promise<unknown> {
    const { timeoutMs } = options;
    if (timeoutMs !== undefined && (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0))
      throw new RangeError(`timeoutMs must be a positive integer, got ${timeoutMs}`);
    const why = whyNotSendable(args, 'args');
    if (why) throw new TypeError(`input ${callId} cannot be sent to container ${this.containerId}: ${why}`);
    if (this.state === 'starting') await this.ready.catch(() => {});
    if (this.state !== 'ready')
      throw new ContainerExitedError(this.containerId, this.exit?.reason ?? 'stopping');
    if (this.waiting.has(callId))
      throw new Error(`input ${callId} is already running in ${this.containerId}`);
    const attempt = (this.attempts.get(callId) ?? 0) + 1;
    this.attempts.set(callId, attempt);
    const encoded = encodeValue(args);
    return new Promise((resolve, reject) => {
      this.waiting.set(callId, { attempt, resolve, reject });
      // Not sent (the connection is down): the agent is either back soon without the container (then it is lost
      // after a heartbeat) or lost; either way the attempt is failed then, not here.
      this.hub.send(this.instanceId, {
        type: 'invoke',
        containerId: this.containerId,
        callId,
        attempt,
        args: encoded,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      });
    });
  }

  stop(): Promise<ContainerExit> {
    if (this.state === 'stopping' || this.state === 'exited') return this.exited;
    this.state = 'stopping';
    if (
      !this.hub.send(this.instanceId, { type: 'stop', containerId: this.containerId }) &&
      !this.hub.present(this.instanceId)
    )
      this.finish({ code: null, signal: null, reason: 'stopped (its agent is gone)' });
    return this.exited;
  }

  onLog(listener: (line: LogLine) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onInputRan(listener: (callId: string, ranMs: number) => void): () => void {
    this.ranListeners.add(listener);
    return () => this.ranListeners.delete(listener);
  }

  private ran(callId: string, ranMs: number | undefined): void {
    if (ranMs !== undefined) for (const listener of this.ranListeners) listener(callId, ranMs);
  }

  report(message: AgentMessage): void {
    switch (message.type) {
      case 'ready':
        if (this.state === 'starting') this.state = 'ready';
        this.markReady.resolve();
        return;
      case 'start-failed':
        this.markReady.reject(
          message.name === 'ContainerExitedError'
            ? new ContainerExitedError(this.containerId, message.message)
            : new RemoteError(
                `container ${this.containerId} failed to start: ${message.message}`,
                message.stack,
                message.name,
              ),
        );
        return;
      case 'result': {
        const attempt = this.settle(message.callId, message.attempt);
        if (!attempt) return;
        this.ran(message.callId, message.ranMs);
        try {
          attempt.resolve(decodeValue(message.value));
        } catch (error) {
          attempt.reject(new TypeError(`the result cannot be read: ${(error as Error).message}`));
        }
        return;
      }
      case 'failed': {
        const attempt = this.settle(message.callId, message.attempt);
        if (!attempt) return;
        this.ran(message.callId, message.ranMs);
        if (message.kind === 'remote')
          attempt.reject(new RemoteError(message.message, message.stack, message.name));
        else if (message.kind === 'exited')
          attempt.reject(new ContainerExitedError(this.containerId, message.message));
        else if (message.kind === 'not-started')
          attempt.reject(new InputNotStartedError(this.containerId, message.message));
        else attempt.reject(new TypeError(message.message));
        return;
      }
      case 'log': {
        const line: LogLine = {
          containerId: this.containerId,
          stream: message.stream,
          text: message.text,
          atMs: message.atMs,
        };
        for (const listener of this.listeners) listener(line);
        return;
      }
      case 'logs':
        for (const { stream, text, atMs } of message.lines) {
          const line: LogLine = { containerId: this.containerId, stream, text, atMs };
          for (const listener of this.listeners) listener(line);
        }
        return;
      case 'exited':
        this.finish({ code: message.code, signal: message.signal, reason: message.reason });
        return;
    }
  }

  lost(reason: string, lastSeenAtMs: number): void {
    this.finish({ code: null, signal: null, reason, atMs: Math.min(lastSeenAtMs, this.clock.now()) });
  }

  private settle(callId: string, attempt: number): Attempt | undefined {
    const waiting = this.waiting.get(callId);
    if (waiting?.attempt !== attempt) return undefined;
    this.waiting.delete(callId);
    return waiting;
  }

  private finish(exit: ContainerExit): void {
    if (this.state === 'exited') return;
    this.state = 'exited';
    this.exit = exit;
    this.hub.untrackContainer(this.containerId);
    const error = new ContainerExitedError(this.containerId, exit.reason);
    // Inputs whose fate the agent did not report (it was lost). It starts a container's inputs in the order they
    // were sent, `concurrency` at a time: as far as the broker can tell, those past the first `concurrency` were
    // still waiting there, and never started.
    const notStarted = new InputNotStartedError(this.containerId, exit.reason);
    let sent = 0;
    for (const [callId, attempt] of this.waiting) {
      this.waiting.delete(callId);
      attempt.reject(sent++ < this.concurrency ? error : notStarted);
    }
    this.markReady.reject(error);
    this.markExited(exit);
  }
}
