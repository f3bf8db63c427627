/**
 * The last failed calls, newest first, with the reason each failed: what an operator looks at first when a
 * function misbehaves (the console's Functions page, `GET /v1/containers`). Kept in memory and bounded: the call
 * journal keeps the durable record; this is a window, lost on restart by design.
 */
import type { CallError, CallView } from '../../runtime/runtime.ts';

export interface RecentFailure {
  readonly callId: string;
  readonly tenantId: string;
  readonly appTenantId: string;
  readonly app: string;
  readonly functionName: string;
  readonly attempts: number;
  readonly error: CallError;
  readonly atMs: number;
}

export class RecentFailures {
  private readonly ring: RecentFailure[] = [];
  /** Failures recorded since start (the ring keeps the last `capacity`). */
  total = 0;

  constructor(private readonly capacity = 200) {}

  add(view: CallView, error: CallError, atMs: number): void {
    this.ring.push({
      callId: view.callId,
      tenantId: view.tenantId,
      appTenantId: view.appTenantId,
      app: view.app,
      functionName: view.functionName,
      attempts: view.attempts,
      error,
      atMs: view.finishedAtMs ?? atMs,
    });
    this.total++;
    if (this.ring.length > this.capacity) this.ring.shift();
  }

  /** Newest first; only those `visible` accepts (a tenant sees the failures of its own calls and apps). */
  latest(limit: number, visible: (failure: RecentFailure) => boolean = () => true): RecentFailure[] {
    const out: RecentFailure[] = [];
    for (let i = this.ring.length - 1; i >= 0 && out.length < limit; i--) {
      const failure = this.ring[i] as RecentFailure;
      if (visible(failure)) out.push(failure);
    }
    return out;
  }
}
