/**
 * How the runtime runs containers: an Executor starts one container per call of `start`, and the handle is all the
 * runtime knows of it. In the broker the executor is the agents' (`broker/agents/agent-executor.ts`): each order
 * goes to the agent of the instance the container was placed on, which runs it with its local executor
 * (`agent/executor/local-executor.ts`); a simulation's executor answers on the virtual clock.
 */

export interface ContainerSpec {
  readonly containerId: string;
  readonly tenantId: string;
  readonly app: string;
  readonly functionName: string;
  /** The bundle by content, `<tenant id>/<sha-256>`: what an agent fetches and checks. */
  readonly bundleId: string;
  /** Absolute path of the bundled ES module (content-addressed) that defines the app's functions, on this host. */
  readonly bundlePath: string;
  /** The instance and GPU indices the container was placed on (CUDA_VISIBLE_DEVICES). */
  readonly instanceId: string;
  readonly gpuIndices: readonly number[];
  /** The tenant's environment and secrets for this app; nothing else of the host's leaks in. */
  readonly env: Readonly<Record<string, string>>;
  /** Inputs handled at once (the function's `concurrency`). */
  readonly concurrency: number;
  /** CPU cores and memory the container may use (an isolating executor enforces them with a cgroup). */
  readonly cpu: number;
  readonly memoryMiB: number;
  /** `egress`: the host's network; `none`: loopback only. */
  readonly network: ContainerNetwork;
  /** The image layer with its npm packages (by recipe id, and the SHA-256 of its tarball), when it has one. */
  readonly layer?: { readonly id: string; readonly sha256: string };
  /** Where that layer's `node_modules` is on this host (set by the agent once it has the layer). */
  readonly nodeModulesPath?: string;
}

export type ContainerNetwork = 'egress' | 'none';

/** An exception thrown by the function inside the container, with its remote message and stack. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly remoteStack: string | undefined,
    readonly remoteName = 'Error',
  ) {
    super(message);
    this.name = 'RemoteError';
  }
}

/** The container died (crashed, killed, timed out) while running an input: the runtime may retry elsewhere. */
export class ContainerExitedError extends Error {
  constructor(
    readonly containerId: string,
    readonly reason: string,
  ) {
    super(`container ${containerId} exited: ${reason}`);
    this.name = 'ContainerExitedError';
  }
}

/**
 * The container ended before this input started: it was waiting its turn (see `Executor.queuesInputs`) and nothing
 * of it ran, so the runtime gives it to another container without counting it against `retries`.
 */
export class InputNotStartedError extends ContainerExitedError {
  constructor(containerId: string, reason: string) {
    super(containerId, reason);
    this.name = 'InputNotStartedError';
  }
}

export interface ContainerExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** Why, in words: `stopped`, `crashed (exit 1)`, `killed: input timed out`, `failed to load bundle: …`. */
  readonly reason: string;
  /**
   * When it ended, where that is earlier than the report: a container whose agent was lost ended, as far as
   * anyone can tell, at the agent's last heartbeat. Absent: now.
   */
  readonly atMs?: number;
}

export interface LogLine {
  readonly containerId: string;
  readonly stream: 'stdout' | 'stderr';
  readonly text: string;
  readonly atMs: number;
}

export interface ContainerHandle {
  readonly containerId: string;
  /** Resolves when the container has loaded the bundle and takes inputs (cold start); rejects if it cannot. */
  readonly ready: Promise<void>;
  /**
   * Runs the function on one input. Resolves with the result (any structured-clone value but class instances);
   * rejects with RemoteError when the function threw, ContainerExitedError when the container died meanwhile
   * (InputNotStartedError when it died before the input started). `timeoutMs`, counted from the input's start,
   * kills the container when exceeded.
   */
  invoke(callId: string, args: readonly unknown[], options?: { timeoutMs?: number }): Promise<unknown>;
  /** Stops it (SIGTERM, then SIGKILL after a grace period); resolves when it has exited. */
  stop(): Promise<ContainerExit>;
  /** Resolves once, when the container has exited for any reason. */
  readonly exited: Promise<ContainerExit>;
  /** Each line the container writes to stdout or stderr. */
  onLog(listener: (line: LogLine) => void): () => void;
  /**
   * How long each input ran in the container (the function's own time, as the container timed it, fractional ms),
   * as it ends; where the executor knows (one that queues inputs does: the runtime sizes what waits by it).
   */
  onInputRan?(listener: (callId: string, ranMs: number) => void): () => void;
}

export interface Executor {
  /**
   * Its containers take more inputs than their `concurrency`: those beyond wait next to the container, in order,
   * and each starts the moment a running one ends, without a round trip to the runtime (which then keeps quick
   * inputs flowing, see Runtime). One still waiting when its container ends is rejected with InputNotStartedError.
   * Such an executor's handles report how long each input ran (`onInputRan`). Absent: the runtime never gives a
   * container more than its concurrency.
   */
  readonly queuesInputs?: boolean;
  start(spec: ContainerSpec): ContainerHandle;
  /**
   * Takes over a container that already runs (an agent still ran it when the broker restarted), where the
   * executor can: the handle is as `start`'s, its `ready` resolving at once when the container is.
   */
  adopt?(spec: ContainerSpec, ready: boolean): ContainerHandle;
  /** Stops every container it started. */
  close(): Promise<void>;
}
