/**
 * Long polls on calls (`GET /v1/calls/{id}?waitMs=`, `POST /v1/calls/wait`): a wait ends when enough of its calls
 * have finished, or at its deadline.
 *
 * Enough is one call for a wait on one; for a wait on many (a `map` keeps up to 1,000 calls in flight and waits on
 * all of them), a quarter of them, or whatever finished within `gatherMs` (20 ms) of the first. Ending at the first
 * answered a map of 10,000 quick inputs ~1,500 times, a few results each, every request costing the parse of 1,000
 * ids and a token check; gathering for 20 ms answers it in tens of requests, and delays a map's results by at most
 * those 20 ms.
 *
 * Waiters hang off the runtime's finish events (one listener while anyone waits), not off a promise per call.
 */
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import type { Runtime } from '../../runtime/runtime.ts';

/** How long a wait on several calls gathers more results after the first of them finished. */
export const GATHER_MS = 20;

export class CallWaits {
  private readonly waiters = new Map<string, Set<() => void>>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly runtime: Pick<Runtime, 'statusOf' | 'onFinished'>,
    private readonly clock: Clock,
    private readonly gatherMs = GATHER_MS,
  ) {}

  /** Whether the call has finished (succeeded, failed or cancelled); false for an unknown call. */
  finished(callId: string): boolean {
    const status = this.runtime.statusOf(callId);
    return status === 'succeeded' || status === 'failed' || status === 'cancelled';
  }

  /**
   * Resolves when enough of `callIds` have finished (see above) or `waitMs` has passed; at once when `waitMs` is 0 or
   * enough have finished already.
   */
  wait(callIds: readonly string[], waitMs: number): Promise<void> {
    const ids = [...new Set(callIds)];
    const enough = Math.max(1, Math.ceil(ids.length / 4));
    let finished = 0;
    for (const id of ids) if (this.finished(id)) finished++;
    if (waitMs <= 0 || finished >= enough) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let deadline: TimerHandle | undefined;
      let gather: TimerHandle | undefined;
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        deadline?.cancel();
        gather?.cancel();
        for (const id of ids) this.forget(id, onFinished);
        resolve();
      };
      const startGathering = () => {
        gather ??= this.clock.setTimer(this.clock.now() + this.gatherMs, end);
      };
      const onFinished = () => {
        finished++;
        if (finished >= enough) end();
        else startGathering();
      };
      for (const id of ids) if (!this.finished(id)) this.listen(id, onFinished);
      deadline = this.clock.setTimer(this.clock.now() + waitMs, end);
      if (finished > 0) startGathering();
    });
  }

  private listen(callId: string, waiter: () => void): void {
    this.unsubscribe ??= this.runtime.onFinished((id) => {
      const set = this.waiters.get(id);
      if (set) for (const w of [...set]) w();
    });
    const set = this.waiters.get(callId);
    if (set) set.add(waiter);
    else this.waiters.set(callId, new Set([waiter]));
  }

  private forget(callId: string, waiter: () => void): void {
    const set = this.waiters.get(callId);
    if (!set) return;
    set.delete(waiter);
    if (set.size === 0) this.waiters.delete(callId);
    if (this.waiters.size === 0) {
      this.unsubscribe?.();
      this.unsubscribe = undefined;
    }
  }
}
