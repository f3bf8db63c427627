/**
 * A simulated executor: containers that exist only on the virtual clock. It implements the runtime's Executor
 * contract (`runtime/executor/executor.ts`) the way the local-process executor does, minus the processes:
 * - `ready` resolves after a cold start drawn from the real model-load latencies (`cold-starts.ts`);
 * - `invoke` resolves after the call's service time, carried in its first argument (`{ serviceMs }`, put there by
 *   the workload); a call longer than the function's `timeoutMs` kills the container at the timeout;
 * - `stop` exits at once; an instance that goes away (`instanceGone`: terminated, reclaimed) takes its containers
 *   with it, and their in-flight calls fail with ContainerExitedError, which the runtime retries elsewhere.
 * Listeners see each container start, become ready and exit, and each input start and end: the simulation's
 * metrics and invariant checks come from these, independently of the runtime's own bookkeeping.
 */
import type { Clock, TimerHandle } from '../lib/clock.ts';
import {
  type ContainerExit,
  ContainerExitedError,
  type ContainerHandle,
  type ContainerSpec,
  type Executor,
  type LogLine,
} from '../runtime/executor/executor.ts';

/** What a workload puts in a call's first argument. */
export interface SimCallArgs {
  /** How long the call runs once a container takes it. */
  readonly serviceMs: number;
  /** When the request arrived (for its wait). */
  readonly arrivalMs: number;
  /**
   * Times a container took it, counted by the executor, so that a retried call is not counted as a new start (a
   * field rather than a WeakSet of millions of calls, whose ephemerons the garbage collector walks every cycle).
   */
  starts: number;
}

export interface SimExecutorListener {
  containerStarted?(spec: ContainerSpec, atMs: number, coldStartMs: number): void;
  containerReady?(containerId: string, atMs: number): void;
  containerExited?(containerId: string, atMs: number, reason: string): void;
  /** A container took the call; `first` is false when it runs again after its container died. */
  inputStarted?(args: SimCallArgs, atMs: number, first: boolean): void;
  inputEnded?(args: SimCallArgs, atMs: number, ok: boolean): void;
}

export interface SimExecutorOptions {
  readonly clock: Clock;
  /** Draws one cold start, ms. */
  readonly coldStartMs: () => number;
  readonly listener?: SimExecutorListener;
  /** An injected fault: when a new container crashes (ms after its start), or undefined when it does not. */
  readonly crashAfterMs?: () => number | undefined;
}

export class SimExecutor implements Executor {
  private readonly containers = new Map<string, SimContainer>();
  private readonly byInstance = new Map<string, Set<SimContainer>>();

  constructor(private readonly o: SimExecutorOptions) {}

  start(spec: ContainerSpec): ContainerHandle {
    const coldStartMs = Math.max(0, Math.round(this.o.coldStartMs()));
    const container = new SimContainer(spec, this.o.clock, coldStartMs, this, this.o.listener);
    this.containers.set(spec.containerId, container);
    let onInstance = this.byInstance.get(spec.instanceId);
    if (!onInstance) {
      onInstance = new Set();
      this.byInstance.set(spec.instanceId, onInstance);
    }
    onInstance.add(container);
    this.o.listener?.containerStarted?.(spec, this.o.clock.now(), coldStartMs);
    const crashAfter = this.o.crashAfterMs?.();
    if (crashAfter !== undefined)
      this.o.clock.setTimer(this.o.clock.now() + crashAfter, () =>
        container.exit('crashed (injected fault)', 1, null),
      );
    return container;
  }

  /** The instance is gone: its containers exit now, failing their in-flight calls. */
  instanceGone(instanceId: string, reason: string): void {
    for (const container of [...(this.byInstance.get(instanceId) ?? [])])
      container.exit(reason, null, 'SIGKILL');
  }

  /** Containers that have not exited. */
  live(): number {
    return this.containers.size;
  }

  async close(): Promise<void> {
    for (const container of [...this.containers.values()]) container.exit('executor closed', null, 'SIGKILL');
  }

  /** @internal Whether this is the call's first start. */
  firstStart(args: SimCallArgs): boolean {
    args.starts++;
    return args.starts === 1;
  }

  /** @internal */
  forget(container: SimContainer): void {
    this.containers.delete(container.containerId);
    const onInstance = this.byInstance.get(container.instanceId);
    onInstance?.delete(container);
    if (onInstance?.size === 0) this.byInstance.delete(container.instanceId);
  }
}

interface InFlight {
  readonly callId: string;
  readonly args: SimCallArgs;
  readonly timer: TimerHandle;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

class SimContainer implements ContainerHandle {
  readonly containerId: string;
  readonly instanceId: string;
  readonly ready: Promise<void>;
  readonly exited: Promise<ContainerExit>;
  private isReady = false;
  private exit_: ContainerExit | undefined;
  private readonly readyTimer: TimerHandle;
  private resolveReady!: () => void;
  private rejectReady!: (error: unknown) => void;
  private resolveExited!: (exit: ContainerExit) => void;
  private readonly inFlight = new Map<string, InFlight>();

  constructor(
    spec: ContainerSpec,
    private readonly clock: Clock,
    coldStartMs: number,
    private readonly executor: SimExecutor,
    private readonly listener: SimExecutorListener | undefined,
  ) {
    this.containerId = spec.containerId;
    this.instanceId = spec.instanceId;
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // The runtime always handles `ready`; a rejection nobody awaits must not crash the process either.
    this.ready.catch(() => undefined);
    this.exited = new Promise<ContainerExit>((resolve) => {
      this.resolveExited = resolve;
    });
    this.readyTimer = clock.setTimer(clock.now() + coldStartMs, () => {
      this.isReady = true;
      this.listener?.containerReady?.(this.containerId, this.clock.now());
      this.resolveReady();
    });
  }

  invoke(callId: string, args: readonly unknown[], options: { timeoutMs?: number } = {}): Promise<unknown> {
    if (this.exit_ || !this.isReady)
      return Promise.reject(new ContainerExitedError(this.containerId, this.exit_?.reason ?? 'not ready'));
    const call = args[0] as SimCallArgs;
    const now = this.clock.now();
    this.listener?.inputStarted?.(call, now, this.executor.firstStart(call));
    const timeoutMs = options.timeoutMs ?? Number.POSITIVE_INFINITY;
    return new Promise<unknown>((resolve, reject) => {
      const timedOut = call.serviceMs > timeoutMs;
      const timer = this.clock.setTimer(now + (timedOut ? timeoutMs : call.serviceMs), () => {
        if (timedOut) {
          this.exit('killed: input timed out', null, 'SIGKILL');
          return;
        }
        this.inFlight.delete(callId);
        this.listener?.inputEnded?.(call, this.clock.now(), true);
        resolve(null);
      });
      this.inFlight.set(callId, { callId, args: call, timer, resolve, reject });
    });
  }

  async stop(): Promise<ContainerExit> {
    this.exit('stopped', 0, null);
    return this.exited;
  }

  onLog(_listener: (line: LogLine) => void): () => void {
    return () => undefined;
  }

  /** Exits now (once): a container that was not ready fails to start; in-flight calls fail. */
  exit(reason: string, code: number | null, signal: string | null): void {
    if (this.exit_) return;
    const exit: ContainerExit = { code, signal, reason };
    this.exit_ = exit;
    this.readyTimer.cancel();
    if (!this.isReady) this.rejectReady(new Error(reason));
    const now = this.clock.now();
    for (const call of this.inFlight.values()) {
      call.timer.cancel();
      this.listener?.inputEnded?.(call.args, now, false);
      call.reject(new ContainerExitedError(this.containerId, reason));
    }
    this.inFlight.clear();
    this.executor.forget(this);
    this.listener?.containerExited?.(this.containerId, now, reason);
    this.resolveExited(exit);
  }
}
