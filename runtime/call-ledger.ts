/**
 * The call ledger: every call the runtime was given, from pending through its attempts to its outcome, kept for
 * `get` and `result` for `retainCallsMs` after it finished. What an attempt's result means for its call is one
 * pure decision, `retryDecision`; the reconciler carries it out.
 */
import type { Clock } from '../lib/clock.ts';
import type { IdGenerator } from '../lib/ids.ts';
import { ContainerExitedError, InputNotStartedError, RemoteError } from './executor/executor.ts';
import type { CallError, CallOutcome, CallRecord, FunctionRecord } from './records.ts';
import { type CallsInFlight, type CallView, callView } from './views.ts';

/** Finished calls are kept at least this long for `get` and `result` (pruned at a tick after). */
export const DEFAULT_RETAIN_CALLS_MS = 3_600_000;

/** What a container answered for one input. */
export type InputResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: unknown };

/** What becomes of a call after one attempt. */
export type RetryDecision =
  | { readonly kind: 'succeed'; readonly value: unknown }
  | { readonly kind: 'fail'; readonly error: CallError }
  /** Queued again; `counted`: the attempt counts against `retries` (its container died while running it). */
  | { readonly kind: 'retry'; readonly counted: boolean };

export interface Attempt {
  readonly result: InputResult;
  /** Times the call was given to a container, this attempt included. */
  readonly attempts: number;
  /** Of those, the ones whose container ended before the input started. */
  readonly unstarted: number;
  /** The function's `retries`. */
  readonly retries: number;
  /** The function is gone: nothing runs again. */
  readonly retired: boolean;
}

/**
 * An input whose container died (ContainerExitedError) runs again up to `retries` times; one that never started
 * there (InputNotStartedError) runs again whatever `retries` says, since nothing of it ran; an exception of the
 * function itself (RemoteError) fails the call at once, as does anything else.
 */
export function retryDecision({ result, attempts, unstarted, retries, retired }: Attempt): RetryDecision {
  if (result.ok) return { kind: 'succeed', value: result.value };
  const { error } = result;
  if (error instanceof RemoteError)
    return {
      kind: 'fail',
      error: {
        name: error.remoteName,
        message: error.message,
        ...(error.remoteStack === undefined ? {} : { stack: error.remoteStack }),
      },
    };
  if (error instanceof InputNotStartedError && !retired) return { kind: 'retry', counted: false };
  if (error instanceof ContainerExitedError && !retired && attempts - unstarted <= retries)
    return { kind: 'retry', counted: true };
  if (!(error instanceof Error)) return { kind: 'fail', error: { name: 'Error', message: String(error) } };
  const message =
    error instanceof ContainerExitedError && attempts > 1
      ? `${error.message} (after ${attempts} attempts)`
      : error.message;
  return { kind: 'fail', error: { name: error.name, message } };
}

export interface CallLedgerOptions {
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly retainCallsMs: number;
  /** A call finished (succeeded, failed or was cancelled): the broker's call journal writes it. */
  readonly onCallFinished?: (callId: string, outcome: CallOutcome, view: () => CallView) => void;
}

/** A call as the broker's journal kept it across a restart (see `CallLedger.restore`). */
export interface JournaledCall {
  callId: string;
  tenantId: string;
  appTenantId: string;
  app: string;
  functionName: string;
  args: readonly unknown[];
  createdAtMs: number;
  attempts: number;
  startedAtMs?: number;
  finishedAtMs?: number;
  outcome?: CallOutcome;
}

export class CallLedger {
  private readonly calls = new Map<string, CallRecord>();
  /** The calls not finished (pending or running): what `inFlight` counts, without walking the finished ones kept. */
  private readonly open = new Set<CallRecord>();
  /** Finished calls in the order they finished (for pruning), from `finishedHead` on. */
  private finished: CallRecord[] = [];
  private finishedHead = 0;
  private readonly finishListeners = new Set<(callId: string) => void>();

  constructor(private readonly o: CallLedgerOptions) {}

  get(callId: string): CallRecord | undefined {
    return this.calls.get(callId);
  }

  view(callId: string): CallView | undefined {
    const call = this.calls.get(callId);
    return call && callView(call);
  }

  /** Queues a new call of `fn` (its id made here unless the caller gave one). */
  enqueue(tenantId: string, fn: FunctionRecord, args: readonly unknown[], callId?: string): CallRecord {
    const record = this.record(
      callId ?? this.o.ids.next('call'),
      tenantId,
      fn,
      [...args],
      'pending',
      0,
      this.o.clock.now(),
    );
    fn.queue.enqueue(record);
    return record;
  }

  /**
   * Takes back a call the broker's journal kept: a finished one with its outcome (answered as before), an
   * unfinished one queued again with its id (it may run once more: execution is at least once).
   */
  restore(call: JournaledCall, fn: FunctionRecord): void {
    const record = this.record(
      call.callId,
      call.tenantId,
      fn,
      [...call.args],
      call.outcome?.status ?? 'pending',
      call.attempts,
      call.createdAtMs,
    );
    record.startedAtMs = call.startedAtMs;
    if (call.outcome) {
      record.finishedAtMs = call.finishedAtMs ?? this.o.clock.now();
      if (call.outcome.status === 'failed') record.error = call.outcome.error;
      record.outcome = call.outcome;
      fn.app.calls.done++;
      this.open.delete(record);
      this.finished.push(record);
      return;
    }
    fn.queue.enqueue(record);
  }

  /** A container took the call. */
  started(call: CallRecord, containerId: string): void {
    call.status = 'running';
    call.attempts++;
    call.startedAtMs ??= this.o.clock.now();
    call.containerId = containerId;
  }

  /** Queues the call again after an attempt (see `retryDecision`). */
  requeue(call: CallRecord, counted: boolean): void {
    call.status = 'pending';
    if (!counted) call.unstarted++;
    call.fn.queue.enqueue(call, { retry: true });
  }

  /** Cancels a pending or running call; false when it had already finished. */
  cancel(call: CallRecord): boolean {
    if (call.status === 'pending') call.fn.queue.cancel(call.callId);
    else if (call.status !== 'running') return false;
    this.finish(call, { status: 'cancelled' });
    return true;
  }

  finish(call: CallRecord, outcome: CallOutcome): void {
    call.status = outcome.status;
    call.finishedAtMs = this.o.clock.now();
    if (outcome.status === 'failed') call.error = outcome.error;
    call.fn.app.calls.done++;
    this.open.delete(call);
    this.finished.push(call);
    call.outcome = outcome;
    const waiters = call.waiters;
    call.waiters = undefined;
    if (waiters) for (const resolve of waiters) resolve(outcome);
    // The view only when asked for: most finished calls (a simulation's millions) are not journaled.
    this.o.onCallFinished?.(call.callId, outcome, () => this.view(call.callId) as CallView);
    for (const listener of this.finishListeners) listener(call.callId);
  }

  /** Resolves with the call's outcome once it has finished (at once when it has). */
  outcome(call: CallRecord): Promise<CallOutcome> {
    if (call.outcome) return Promise.resolve(call.outcome);
    return new Promise((resolve) => {
      call.waiters ??= [];
      call.waiters.push(resolve);
    });
  }

  /** Each call that finishes from now on (succeeded, failed or cancelled), by id. Returns the unsubscribe. */
  onFinished(listener: (callId: string) => void): () => void {
    this.finishListeners.add(listener);
    return () => this.finishListeners.delete(listener);
  }

  /** Calls queued (pending) or running, counted per tenant, app, function and status. */
  inFlight(): CallsInFlight[] {
    const counts = new Map<string, CallsInFlight>();
    for (const call of this.open) {
      const { app, name } = call.fn;
      const key = `${call.tenantId}\u0000${app.tenantId}\u0000${app.app}\u0000${name}\u0000${call.status}`;
      const entry = counts.get(key) ?? {
        tenantId: call.tenantId,
        appTenantId: app.tenantId,
        app: app.app,
        functionName: name,
        status: call.status,
        count: 0,
      };
      entry.count++;
      counts.set(key, entry);
    }
    return [...counts.values()];
  }

  /** Forgets calls finished longer than `retainCallsMs` ago; O(calls forgotten), the array is compacted rarely. */
  prune(): void {
    const before = this.o.clock.now() - this.o.retainCallsMs;
    let head = this.finishedHead;
    for (; head < this.finished.length; head++) {
      const call = this.finished[head] as CallRecord;
      if ((call.finishedAtMs as number) > before) break;
      this.calls.delete(call.callId);
    }
    this.finishedHead = head;
    if (head > 1024 && head * 2 > this.finished.length) {
      this.finished = this.finished.slice(head);
      this.finishedHead = 0;
    }
  }

  /** Files a call (counted in its app's calls): one shape for every record, its fields in one order. */
  private record(
    callId: string,
    tenantId: string,
    fn: FunctionRecord,
    args: readonly unknown[],
    status: CallRecord['status'],
    attempts: number,
    createdAtMs: number,
  ): CallRecord {
    const record: CallRecord = {
      callId,
      tenantId,
      fn,
      args,
      status,
      attempts,
      unstarted: 0,
      createdAtMs,
      startedAtMs: undefined,
      finishedAtMs: undefined,
      containerId: undefined,
      error: undefined,
      outcome: undefined,
      waiters: undefined,
    };
    this.calls.set(callId, record);
    this.open.add(record);
    fn.app.calls.total++;
    return record;
  }
}
