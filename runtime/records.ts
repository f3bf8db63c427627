/**
 * The runtime's records: deployed apps, their functions, the containers placed for them and the calls made to them.
 * Plain mutable data; each field says which part keeps it (`pools.ts`, `supervisor.ts`, `call-ledger.ts`,
 * `reconciler.ts`). The apps are found here by tenant and name.
 */
import type { ContainerLifecycle } from './container.ts';
import type { ContainerHandle } from './executor/executor.ts';
import type { FunctionSpec } from './function-spec.ts';
import { InputQueue } from './input-queue.ts';
import type { ContainerPlacement } from './placement.ts';

export type CallStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface CallError {
  readonly message: string;
  readonly stack?: string;
  readonly name: string;
}

export type CallOutcome =
  | { readonly status: 'succeeded'; readonly value: unknown }
  | { readonly status: 'failed'; readonly error: CallError }
  | { readonly status: 'cancelled' };

export interface AppRecord {
  readonly tenantId: string;
  readonly app: string;
  bundleId: string;
  env: Readonly<Record<string, string>>;
  version: number;
  readonly functions: Map<string, FunctionRecord>;
  /** Calls made and calls finished since the first deploy (kept by the call ledger). */
  readonly calls: { done: number; total: number };
}

export interface FunctionRecord {
  readonly app: AppRecord;
  readonly name: string;
  spec: FunctionSpec;
  /** bundle + env + spec: containers of another revision drain. */
  revision: string;
  /** Its pending calls (the call ledger enqueues, the reconciler dispatches). */
  readonly queue: InputQueue<CallRecord>;
  /** Containers that hold GPUs or still have inputs in flight (pools.ts). */
  readonly containers: Map<string, ContainerRecord>;
  /** Gone (app stopped or function removed by a re-deploy): nothing new is placed or dispatched. */
  retired: boolean;
  /** Consecutive containers that failed to start, and the backoff they earned (reconciler.ts). */
  startFailures: number;
  startBackoffUntilMs: number;
  /**
   * The containers that count towards its size (`current`) and their inputs in flight, kept as they change
   * (pools.ts): a scale-up runs for every call, and counting hundreds of containers each time was most of the
   * runtime's time.
   */
  readonly size: { containers: number; inFlight: number };
  /**
   * Its containers that can take an input now (`takesInputs`), kept as they change (pools.ts): while inputs queue,
   * every call and every finished input dispatches, and scanning hundreds of busy containers each time was most of
   * the runtime's time at a peak.
   */
  readonly open: Set<ContainerRecord>;
  /**
   * Its containers with nothing in flight, in the order they became idle (pools.ts): the first one's scale-down
   * window ends first, and every finished input asks when that is (scanning them all was ~5 % of a long simulation).
   */
  readonly idle: Set<ContainerRecord>;
  /**
   * How long an input runs in its container (ms): the median of the latest run times the executor reported
   * (pools.ts); undefined before the first.
   */
  serviceMs: number | undefined;
  /** The latest run times, oldest overwritten first. */
  readonly ranMs: number[];
  ranCount: number;
  /** Inputs a container of it holds beyond `concurrency`; 0 where the executor queues none. */
  queuedPerContainer: number;
  /** While its inputs have not been timed (a probe): when the first was given to a container. */
  probeSinceMs: number | undefined;
}

export interface ContainerRecord {
  readonly containerId: string;
  /** Placement order within the runtime: dispatch breaks ties between equally busy containers by it. */
  readonly seq: number;
  readonly fn: FunctionRecord;
  readonly revision: string;
  readonly bundleId: string;
  readonly lifecycle: ContainerLifecycle;
  readonly placement: ContainerPlacement;
  handle: ContainerHandle | undefined;
  readonly running: Map<string, CallRecord>;
  idleSinceMs: number | undefined;
  stopRequested: boolean;
  /** An input reported it dead (ContainerExitedError): nothing more goes to it; its exit releases it. */
  lost: boolean;
  released: boolean;
  /** Counted in its function's `size`: placed, starting or ready, not lost, of the function's revision. */
  counted: boolean;
  exitedAtMs: number | undefined;
  /** When its usage ends, where earlier than its exit was handled (ContainerExit.atMs). */
  usageEndsAtMs?: number;
  exitReason: string | undefined;
  unsubscribeLog: (() => void) | undefined;
  unsubscribeRan: (() => void) | undefined;
}

export interface CallRecord {
  readonly callId: string;
  readonly tenantId: string;
  readonly fn: FunctionRecord;
  readonly args: readonly unknown[];
  status: CallStatus;
  attempts: number;
  /** Attempts whose container ended before the input started (InputNotStartedError): not counted as retries. */
  unstarted: number;
  readonly createdAtMs: number;
  startedAtMs: number | undefined;
  finishedAtMs: number | undefined;
  containerId: string | undefined;
  error: CallError | undefined;
  /** How it ended, once it has. */
  outcome: CallOutcome | undefined;
  /**
   * Who waits for the outcome (`CallLedger.outcome`): made only when someone asks, since most calls (a simulation's
   * millions) are never waited for, and a promise per call was garbage to collect.
   */
  waiters: ((outcome: CallOutcome) => void)[] | undefined;
}

/** A function's record as first deployed: nothing placed, nothing timed. */
export function newFunctionRecord(
  app: AppRecord,
  name: string,
  spec: FunctionSpec,
  revision: string,
): FunctionRecord {
  return {
    app,
    name,
    spec,
    revision,
    queue: new InputQueue(),
    containers: new Map(),
    retired: false,
    startFailures: 0,
    startBackoffUntilMs: 0,
    size: { containers: 0, inFlight: 0 },
    open: new Set(),
    idle: new Set(),
    serviceMs: undefined,
    ranMs: [],
    ranCount: 0,
    queuedPerContainer: 0,
    probeSinceMs: undefined,
  };
}

/** The deployed apps, by owner and name, in the order they were first deployed. */
export class AppRecords {
  private readonly apps = new Map<string, AppRecord>();

  get(tenantId: string, app: string): AppRecord | undefined {
    return this.apps.get(appKey(tenantId, app));
  }

  /** The app's record, made (version 0, no functions) on its first deploy. */
  getOrAdd(
    tenantId: string,
    app: string,
    bundleId: string,
    env: Readonly<Record<string, string>>,
  ): AppRecord {
    const key = appKey(tenantId, app);
    let state = this.apps.get(key);
    if (!state) {
      state = {
        tenantId,
        app,
        bundleId,
        env,
        version: 0,
        functions: new Map(),
        calls: { done: 0, total: 0 },
      };
      this.apps.set(key, state);
    }
    return state;
  }

  delete(tenantId: string, app: string): void {
    this.apps.delete(appKey(tenantId, app));
  }

  clear(): void {
    this.apps.clear();
  }

  values(): IterableIterator<AppRecord> {
    return this.apps.values();
  }

  /** Every function of every app, apps in deploy order. */
  *functions(): Generator<FunctionRecord> {
    for (const state of this.apps.values()) yield* state.functions.values();
  }

  countFunctions(): number {
    let n = 0;
    for (const state of this.apps.values()) n += state.functions.size;
    return n;
  }
}

const appKey = (tenantId: string, app: string) => `${tenantId}\u0000${app}`;
