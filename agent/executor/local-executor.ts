/**
 * Runs each container as a child process on this machine: `node container-worker.mjs <bundle URL>`, in its own
 * working directory `<workRoot>/<containerId>` (removed once it has exited) and its own process group, with an
 * environment made only of the spec's env and the variables below — nothing of the host's leaks in.
 *
 * Protocol over the IPC channel (structured clone, so Dates, Maps and typed arrays cross; values that would not
 * survive are refused with a message naming them, see sendable.mjs):
 *   parent → worker  { kind: 'call', callId, args }                       (only after `ready`)
 *   worker → parent  { kind: 'ready' }                                    bundle imported, function found
 *                    { kind: 'load-failed', message, stack, name }        then the worker exits 1
 *                    { kind: 'result', callId, value, ranMs }             ranMs: the function's own time, fractional
 *                    { kind: 'error', callId, message, stack, name, ranMs? }  it threw, or its value can't be sent
 * At most `concurrency` inputs are in the worker at once: more wait here, in order, and each is sent the moment one
 * ends (so the runtime may keep a quick function's container fed without a round trip per input); their timeout
 * runs from then. One still waiting when the container ends is rejected with InputNotStartedError: it never ran.
 * Each stdout/stderr line becomes a LogLine stamped with the clock's time. Timeouts and the stop grace period run on
 * the clock.
 *
 * With a sandbox (`sandbox/bubblewrap.ts`) the same worker runs isolated: its own namespaces, cgroup limits, user and
 * read-only root, its working directory mounted as /scratch; signals go to every process of its cgroup, and an exit
 * the memory limit caused says so. Without one, it is a plain child process of the agent's user.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, copyFileSync, linkSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Clock, RealClock, type TimerHandle } from '../../lib/clock.ts';
import { runBelowThisProcess } from '../../lib/priority.ts';
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
import {
  type BubblewrapSandbox,
  containerRequest,
  SANDBOX_PATHS,
  type SandboxLaunch,
} from './sandbox/bubblewrap.ts';
import { whyNotSendable } from './sendable.mjs';

export interface LocalExecutorOptions {
  /** Each container works in `<workRoot>/<containerId>`, created at start and removed after it exits. */
  readonly workRoot: string;
  /** Time for input timeouts, the stop grace period and log timestamps. Default: RealClock. */
  readonly clock?: Clock;
  /** How long `stop` waits after SIGTERM before SIGKILL. Default 5000 ms. */
  readonly stopGraceMs?: number;
  /** The node binary that runs containers. Default: the one running this process. */
  readonly nodePath?: string;
  /**
   * How much lower than this process containers run (nice, 0–19). Default 10: a container busy with work never
   * starves the agent of the CPU it needs to answer the broker.
   */
  readonly niceness?: number;
  /** Runs each container isolated in this sandbox; absent: unisolated child processes. */
  readonly sandbox?: BubblewrapSandbox;
}

const WORKER = fileURLToPath(new URL('./container-worker.mjs', import.meta.url));
/** A line longer than this is delivered in pieces, so that output without newlines cannot grow without bound. */
const MAX_LINE_CHARS = 64 * 1024;

export class LocalExecutor implements Executor {
  /** Inputs beyond a container's concurrency wait here, in order, and start as running ones end. */
  readonly queuesInputs = true;
  private readonly clock: Clock;
  private readonly stopGraceMs: number;
  private readonly nodePath: string;
  private readonly running = new Set<LocalContainer>();
  private closed = false;

  constructor(private readonly options: LocalExecutorOptions) {
    this.clock = options.clock ?? new RealClock();
    this.stopGraceMs = options.stopGraceMs ?? 5000;
    this.nodePath = options.nodePath ?? process.execPath;
  }

  /** Throws (synchronously) on a container id that is not a safe directory name or is already in use. */
  start(spec: ContainerSpec): ContainerHandle {
    if (this.closed) throw new Error('the executor is closed');
    if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(spec.containerId))
      throw new RangeError(
        `container id must be a plain directory name: ${JSON.stringify(spec.containerId)}`,
      );
    const workDir = join(this.options.workRoot, spec.containerId);
    mkdirSync(this.options.workRoot, { recursive: true });
    mkdirSync(workDir, { mode: 0o700 });
    let child: ChildProcess;
    let launch: SandboxLaunch | undefined;
    try {
      const sandbox = this.options.sandbox;
      if (sandbox) {
        launch = sandbox.launch(
          containerRequest(spec, workDir, WORKER, this.nodePath, containerEnv(spec, SANDBOX_PATHS.scratch)),
        );
        // Its scratch directory is its own: nobody else's user can read it.
        chownSync(workDir, launch.uid, launch.uid);
      }
      child = launch
        ? spawn(launch.command, launch.args, {
            cwd: workDir,
            env: launch.env,
            stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
            serialization: 'advanced',
            detached: true,
          })
        : spawn(this.nodePath, [WORKER, pathToFileURL(withNodeModules(spec, workDir)).href], {
            cwd: workDir,
            env: containerEnv(spec, workDir),
            stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
            serialization: 'advanced',
            // Its own process group: stopping the container also stops whatever it started.
            detached: true,
          });
    } catch (error) {
      void launch?.release();
      rmSync(workDir, { recursive: true, force: true });
      rmSync(`${workDir}.app`, { recursive: true, force: true });
      throw error;
    }
    runBelowThisProcess(child.pid, this.options.niceness ?? 10);
    const container = new LocalContainer(
      spec.containerId,
      spec.concurrency,
      child,
      workDir,
      this.clock,
      this.stopGraceMs,
      launch && { launch, memoryMiB: spec.memoryMiB },
    );
    this.running.add(container);
    void container.exited.then(() => this.running.delete(container));
    return container;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.running].map((container) => container.stop()));
  }
}

/**
 * The bundle to import, unisolated. With an image layer, node resolves the bundle's imports from a `node_modules`
 * beside it: `<workDir>.app/` holds the bundle (a hard link, so its real path is there) and a link to the layer.
 */
function withNodeModules(spec: ContainerSpec, workDir: string): string {
  if (!spec.nodeModulesPath) return spec.bundlePath;
  const appDir = `${workDir}.app`;
  mkdirSync(appDir);
  const bundle = join(appDir, 'bundle.mjs');
  try {
    linkSync(spec.bundlePath, bundle);
  } catch {
    copyFileSync(spec.bundlePath, bundle);
  }
  symlinkSync(spec.nodeModulesPath, join(appDir, 'node_modules'), 'dir');
  return bundle;
}

/** The spec's env, then what the worker needs; the variables the executor sets cannot be overridden by the spec. */
function containerEnv(spec: ContainerSpec, workDir: string): Record<string, string> {
  return {
    ...spec.env,
    PATH: spec.env.PATH ?? process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: workDir,
    CUDA_VISIBLE_DEVICES: spec.gpuIndices.join(','),
    GPUBROKER_CONTAINER_ID: spec.containerId,
    GPUBROKER_APP: spec.app,
    GPUBROKER_FUNCTION: spec.functionName,
    GPUBROKER_TENANT: spec.tenantId,
  };
}

type WorkerMessage =
  | { kind: 'ready' }
  | { kind: 'load-failed'; message: string; stack?: string; name?: string }
  | { kind: 'result'; callId: string; value: unknown; ranMs?: number }
  | { kind: 'error'; callId: string; message: string; stack?: string; name?: string; ranMs?: number };

interface Call {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer?: TimerHandle;
}

/** An input waiting for one of the container's `concurrency` slots. */
interface QueuedCall {
  readonly callId: string;
  readonly args: readonly unknown[];
  readonly timeoutMs: number | undefined;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

type State = 'starting' | 'ready' | 'stopping' | 'exited';

class LocalContainer implements ContainerHandle {
  readonly ready: Promise<void>;
  readonly exited: Promise<ContainerExit>;
  private state: State = 'starting';
  private readonly markReady = deferred<void>();
  private readonly markExited = deferred<ContainerExit>();
  /** Inputs sent to the worker (at most `concurrency`). */
  private readonly calls = new Map<string, Call>();
  /** Inputs waiting for a slot, in order. */
  private readonly queued = new Map<string, QueuedCall>();
  private readonly listeners = new Set<(line: LogLine) => void>();
  private readonly ranListeners = new Set<(callId: string, ranMs: number) => void>();
  /** Why the container is going away, when the executor decided it (stop, timeout) or the bundle failed to load. */
  private cause: string | undefined;
  private graceTimer: TimerHandle | undefined;
  private exit: ContainerExit | undefined;

  constructor(
    readonly containerId: string,
    private readonly concurrency: number,
    private readonly child: ChildProcess,
    private readonly workDir: string,
    private readonly clock: Clock,
    private readonly stopGraceMs: number,
    private readonly sandboxed?: { readonly launch: SandboxLaunch; readonly memoryMiB: number },
  ) {
    this.ready = this.markReady.promise;
    // Nobody has to await `ready`: a failed start is also reported through `exited` and every later `invoke`.
    this.ready.catch(() => {});
    this.exited = this.markExited.promise;
    const flushOut = this.readLines(child.stdout as Readable, 'stdout');
    const flushErr = this.readLines(child.stderr as Readable, 'stderr');
    child.on('message', (message: WorkerMessage) => this.onMessage(message));
    child.on('exit', (code, signal) => this.onExit(code, signal));
    // Spawning failed ('close' follows, 'exit' does not); otherwise a send raced the exit, which 'exit' reports.
    child.on('error', (error) => {
      if (child.pid === undefined) this.cause ??= `failed to start: ${error.message}`;
    });
    // After the exit, once stdout, stderr and the IPC channel are drained: every message sent before it died counts.
    child.on('close', () => {
      flushOut();
      flushErr();
      void this.onClose();
    });
  }

  async invoke(
    callId: string,
    args: readonly unknown[],
    options: { timeoutMs?: number } = {},
  ): Promise<unknown> {
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined && (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0))
      throw new RangeError(`timeoutMs must be a positive integer, got ${timeoutMs}`);
    const why = whyNotSendable(args, 'args');
    if (why) throw new TypeError(`input ${callId} cannot be sent to container ${this.containerId}: ${why}`);
    if (this.state === 'starting') await this.ready.catch(() => {});
    if (this.state !== 'ready') throw new ContainerExitedError(this.containerId, this.exitReasonSoFar());
    if (this.calls.has(callId) || this.queued.has(callId))
      throw new Error(`input ${callId} is already running in ${this.containerId}`);
    return new Promise((resolve, reject) => {
      const call: QueuedCall = { callId, args, timeoutMs, resolve, reject };
      if (this.calls.size < this.concurrency) this.begin(call);
      else this.queued.set(callId, call);
    });
  }

  /** Sends an input to the worker; its timeout runs from now. */
  private begin({ callId, args, timeoutMs, resolve, reject }: QueuedCall): void {
    try {
      this.child.send({ kind: 'call', callId, args });
    } catch (error) {
      reject(
        new TypeError(
          `input ${callId} cannot be sent to container ${this.containerId}: ${(error as Error).message}`,
        ),
      );
      return;
    }
    const call: Call = { resolve, reject };
    if (timeoutMs !== undefined)
      call.timer = this.clock.setTimer(this.clock.now() + timeoutMs, () => this.timeOut(timeoutMs));
    this.calls.set(callId, call);
  }

  /** Starts waiting inputs while slots are free (after an input ended). */
  private beginQueued(): void {
    for (const call of this.queued.values()) {
      if (this.calls.size >= this.concurrency || this.state !== 'ready') return;
      this.queued.delete(call.callId);
      this.begin(call);
    }
  }

  stop(): Promise<ContainerExit> {
    if (this.state === 'stopping' || this.state === 'exited') return this.exited;
    this.state = 'stopping';
    this.cause ??= 'stopped';
    this.signal('SIGTERM');
    this.graceTimer = this.clock.setTimer(this.clock.now() + this.stopGraceMs, () => {
      if (this.cause === 'stopped') this.cause = `stopped (SIGKILL after ${this.stopGraceMs} ms grace)`;
      this.signal('SIGKILL');
    });
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

  /** An input's answer came from the worker: how long it ran (as the worker timed it), then the call itself. */
  private answered(callId: string, ranMs: number | undefined): Call | undefined {
    const call = this.settle(callId);
    if (call && ranMs !== undefined && Number.isFinite(ranMs) && ranMs >= 0)
      for (const listener of this.ranListeners) listener(callId, ranMs);
    return call;
  }

  private onMessage(message: WorkerMessage): void {
    switch (message.kind) {
      case 'ready':
        if (this.state === 'starting') this.state = 'ready';
        this.markReady.resolve();
        return;
      case 'load-failed':
        this.cause ??= `failed to load bundle: ${message.message}`;
        this.markReady.reject(
          new RemoteError(
            `container ${this.containerId} failed to load its bundle: ${message.message}`,
            message.stack,
            message.name,
          ),
        );
        return;
      case 'result':
        this.answered(message.callId, message.ranMs)?.resolve(message.value);
        this.beginQueued();
        return;
      case 'error':
        this.answered(message.callId, message.ranMs)?.reject(
          new RemoteError(message.message, message.stack, message.name),
        );
        this.beginQueued();
        return;
    }
  }

  private settle(callId: string): Call | undefined {
    const call = this.calls.get(callId);
    this.calls.delete(callId);
    call?.timer?.cancel();
    return call;
  }

  private timeOut(timeoutMs: number): void {
    if (this.state === 'exited') return;
    this.state = 'stopping';
    this.cause ??= `killed: input timed out after ${timeoutMs} ms`;
    this.signal('SIGKILL');
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.state = 'exited';
    this.graceTimer?.cancel();
    // Whatever the container started dies with it.
    this.signal('SIGKILL');
    // bubblewrap exits 128 + N when the worker died of signal N.
    if (this.sandboxed && code !== null && code > 128) {
      const number = code - 128;
      const name = Object.entries(constants.signals).find(([, n]) => n === number)?.[0];
      if (name) {
        code = null;
        signal = name as NodeJS.Signals;
      }
    }
    const oom = this.sandboxed && this.sandboxed.launch.cgroup.oomKills() > 0;
    const reason = oom
      ? `out of memory (limit ${this.sandboxed?.memoryMiB} MiB)`
      : (this.cause ??
        (code !== null ? `crashed (exit ${code})` : `crashed (signal ${signal ?? 'unknown'})`));
    this.exit = { code, signal, reason };
  }

  /** Fails what is still waiting on the container, removes its working directory, then resolves `exited`. */
  private async onClose(): Promise<void> {
    if (!this.exit) this.onExit(null, null);
    const exit = this.exit as ContainerExit;
    const error = new ContainerExitedError(this.containerId, exit.reason);
    for (const callId of [...this.calls.keys()]) this.settle(callId)?.reject(error);
    const notStarted = new InputNotStartedError(this.containerId, exit.reason);
    for (const call of this.queued.values()) call.reject(notStarted);
    this.queued.clear();
    this.markReady.reject(error);
    await this.sandboxed?.launch.release().catch(() => {});
    await rm(this.workDir, { recursive: true, force: true }).catch(() => {});
    await rm(`${this.workDir}.app`, { recursive: true, force: true }).catch(() => {});
    this.markExited.resolve(exit);
  }

  private exitReasonSoFar(): string {
    return this.exit?.reason ?? this.cause ?? 'stopping';
  }

  private signal(signal: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    if (this.sandboxed) {
      // Every process of its cgroup; bubblewrap itself (the child) only on SIGKILL, else it would end the
      // sandbox before the worker had its grace period.
      this.sandboxed.launch.cgroup.signalAll(signal, signal === 'SIGKILL' ? undefined : pid);
      if (signal === 'SIGKILL') this.killGroup(pid, signal);
      return;
    }
    this.killGroup(pid, signal);
  }

  private killGroup(pid: number, signal: NodeJS.Signals): void {
    try {
      process.kill(-pid, signal);
    } catch {
      // The group is gone already.
    }
  }

  /** Splits a stream into lines for the listeners; returns a function that delivers the unterminated rest. */
  private readLines(stream: Readable, name: LogLine['stream']): () => void {
    let partial = '';
    const emit = (text: string) => {
      const line: LogLine = { containerId: this.containerId, stream: name, text, atMs: this.clock.now() };
      for (const listener of this.listeners) listener(line);
    };
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const pieces = (partial + chunk).split('\n');
      partial = pieces.pop() ?? '';
      for (const piece of pieces) emit(piece.endsWith('\r') ? piece.slice(0, -1) : piece);
      while (partial.length > MAX_LINE_CHARS) {
        emit(partial.slice(0, MAX_LINE_CHARS));
        partial = partial.slice(MAX_LINE_CHARS);
      }
    });
    return () => {
      if (partial !== '') emit(partial);
      partial = '';
    };
  }
}

function deferred<T>(): { promise: Promise<T>; resolve(value: T): void; reject(error: Error): void } {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
