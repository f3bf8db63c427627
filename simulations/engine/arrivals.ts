/**
 * Feeds requests into the simulation lazily: one timer at a time, set for the next arrival; when it fires, every
 * request due at that moment is submitted and the timer is set for the one after. Millions of arrivals never
 * become millions of pending timers.
 */
import type { Clock } from '../../lib/clock.ts';
import type { SimRequest } from '../workloads/workload.ts';

export class ArrivalFeed {
  private next: IteratorResult<SimRequest>;
  submitted = 0;

  constructor(
    private readonly clock: Clock,
    /** Clock time of the workload's t = 0. */
    private readonly originMs: number,
    private readonly requests: Iterator<SimRequest>,
    private readonly submit: (request: SimRequest, atMs: number) => void,
  ) {
    this.next = requests.next();
  }

  start(): void {
    this.arm();
  }

  private arm(): void {
    if (this.next.done) return;
    this.clock.setTimer(this.originMs + this.next.value.atMs, () => this.fire());
  }

  private fire(): void {
    const now = this.clock.now();
    while (!this.next.done && this.originMs + this.next.value.atMs <= now) {
      this.submitted++;
      this.submit(this.next.value, now);
      this.next = this.requests.next();
    }
    this.arm();
  }
}
