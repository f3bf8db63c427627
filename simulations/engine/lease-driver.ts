/**
 * Replays lease requests through the broker's LeaseService, as a tenant would over the API: request at arrival,
 * hold for the task's duration once ready, release. A lease that is not ready at once waits `pending` while the
 * control loop buys capacity; `check()` (run after moments when that can change: a provider event, a tick, a
 * lease call) notices it became ready and starts its clock. A lease that loses its GPUs (its instance reclaimed and
 * no free GPUs to move it to) waits `pending` again for replacement capacity: its clock stops until it is served
 * again, for the time it still had to run. A lease the broker ends early is requested again for that time.
 */
import { leaseRequestSchema } from '../../broker/api/schemas.ts';
import type { BrokerCore } from '../../broker/broker.ts';
import type { Principal } from '../../broker/tokens.ts';
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import type { LeaseGpus } from './metrics.ts';

interface TrackedLease {
  readonly arrivalMs: number;
  readonly gpus: number;
  /** How long it must still run once ready. */
  durationMs: number;
  /** False for a lease requested again after the broker ended it early, or waiting again: its wait was counted. */
  first: boolean;
  readyAtMs: number | undefined;
  release: TimerHandle | undefined;
}

export interface LeaseDriverOptions {
  readonly broker: BrokerCore;
  readonly clock: Clock;
  readonly principal: Principal;
  readonly gpu: string;
  /** Before a lease changes state (so that unmet demand integrates up to now). */
  readonly beforeChange: () => void;
  /** A lease became ready after waiting `waitedMs` (first requests only). */
  readonly served: (waitedMs: number) => void;
}

export class LeaseDriver {
  private readonly tracked = new Map<string, TrackedLease>();
  private inFlight = 0;
  private dirty = false;
  /** GPU-ms held by ready leases, as the driver saw them (compared with the meter at the end). */
  heldGpuMs = 0;
  requests = 0;
  /** Leases the broker refused outright (no offering can serve them). */
  refused = 0;
  private pendingGpus = 0;
  private readyGpus = 0;

  constructor(private readonly o: LeaseDriverOptions) {}

  /** Work in flight (lease calls not answered yet). */
  get busy(): boolean {
    return this.inFlight > 0;
  }

  gpus(): LeaseGpus {
    return { pending: this.pendingGpus, ready: this.readyGpus };
  }

  /** Something that can serve or end leases happened. */
  markDirty(): void {
    this.dirty = true;
  }

  request(gpus: number, durationMs: number, arrivalMs: number, first = true): void {
    this.requests += first ? 1 : 0;
    this.inFlight++;
    const request = leaseRequestSchema.parse({
      gpu: this.o.gpu,
      count: gpus,
      placement: gpus > 1 ? 'single-node' : 'any',
    });
    void this.o.broker.leases
      .request(this.o.principal, request)
      .then(({ lease }) => {
        if (lease.status === 'failed') {
          this.refused++;
          return;
        }
        this.o.beforeChange();
        const tracked: TrackedLease = {
          arrivalMs,
          gpus,
          durationMs,
          first,
          readyAtMs: undefined,
          release: undefined,
        };
        this.tracked.set(lease.id, tracked);
        this.pendingGpus += gpus;
        if (lease.status === 'ready')
          this.becameReady(lease.id, tracked, lease.readyAtMs ?? this.o.clock.now());
      })
      .finally(() => {
        this.inFlight--;
      });
  }

  /** Looks at the broker's open leases when something changed; returns whether it started work. */
  check(): boolean {
    if (!this.dirty || this.tracked.size === 0) return false;
    this.dirty = false;
    const open = new Map(this.o.broker.leases.openOf(this.o.principal.tenantId).map((row) => [row.id, row]));
    let started = false;
    for (const [id, tracked] of [...this.tracked]) {
      const row = open.get(id);
      if (tracked.readyAtMs === undefined) {
        if (row?.status === 'ready') this.becameReady(id, tracked, row.readyAt ?? this.o.clock.now());
        else if (!row) {
          // Ended while pending: ask again.
          this.forget(id, tracked);
          this.request(tracked.gpus, tracked.durationMs, tracked.arrivalMs, tracked.first);
          started = true;
        }
      } else if (row?.status === 'pending') {
        // Lost its GPUs: not held until replacement capacity serves it, then held for the time it still has.
        this.lostGpus(tracked);
      } else if (!row) {
        // Ended by the broker before its time: run the rest elsewhere.
        const now = this.o.clock.now();
        this.forget(id, tracked);
        const left = tracked.readyAtMs + tracked.durationMs - now;
        if (left > 0) {
          this.request(tracked.gpus, left, now, false);
          started = true;
        }
      }
    }
    return started;
  }

  /** Time still counted for leases held at the end of the run. */
  finish(): void {
    const now = this.o.clock.now();
    for (const tracked of this.tracked.values())
      if (tracked.readyAtMs !== undefined) this.heldGpuMs += (now - tracked.readyAtMs) * tracked.gpus;
  }

  /** Arrival times of the leases still waiting. */
  waitingSince(): number[] {
    return [...this.tracked.values()]
      .filter((t) => t.readyAtMs === undefined && t.first)
      .map((t) => t.arrivalMs);
  }

  private becameReady(id: string, tracked: TrackedLease, readyAtMs: number): void {
    this.o.beforeChange();
    tracked.readyAtMs = readyAtMs;
    this.pendingGpus -= tracked.gpus;
    this.readyGpus += tracked.gpus;
    if (tracked.first) this.o.served(readyAtMs - tracked.arrivalMs);
    tracked.release = this.o.clock.setTimer(readyAtMs + tracked.durationMs, () => {
      this.o.beforeChange();
      this.forget(id, tracked);
      this.inFlight++;
      this.markDirty();
      void this.o.broker.leases
        .release(this.o.principal, id)
        .catch(() => undefined)
        .finally(() => {
          this.inFlight--;
        });
    });
  }

  private lostGpus(tracked: TrackedLease): void {
    this.o.beforeChange();
    const now = this.o.clock.now();
    const readyAtMs = tracked.readyAtMs as number;
    tracked.release?.cancel();
    tracked.release = undefined;
    this.heldGpuMs += (now - readyAtMs) * tracked.gpus;
    tracked.durationMs -= now - readyAtMs;
    tracked.readyAtMs = undefined;
    tracked.first = false;
    this.readyGpus -= tracked.gpus;
    this.pendingGpus += tracked.gpus;
  }

  private forget(id: string, tracked: TrackedLease): void {
    this.o.beforeChange();
    this.tracked.delete(id);
    tracked.release?.cancel();
    if (tracked.readyAtMs === undefined) this.pendingGpus -= tracked.gpus;
    else {
      this.readyGpus -= tracked.gpus;
      this.heldGpuMs += (this.o.clock.now() - tracked.readyAtMs) * tracked.gpus;
    }
  }
}
