/**
 * A container's lifecycle as an explicit state machine, every transition stamped on the Clock:
 *
 *   placed ──▶ starting ──▶ ready ──▶ draining ──▶ stopped
 *     │           │  │        │          │
 *     │           │  └────────┼──▶ draining (stopped before it was ready)
 *     └───────────┴───────────┴──────────┴──▶ failed
 *
 * placed: GPUs held, not started; starting: the executor loads the bundle (cold start); ready: takes inputs;
 * draining: takes no new inputs and stops once its in-flight ones end; stopped: exited when asked to; failed: could
 * not start, or exited when not asked to (crash, kill). Any other transition is a bug and throws.
 */
import type { Clock } from '../lib/clock.ts';
import { GpubrokerError } from '../lib/errors.ts';

export type ContainerState = 'placed' | 'starting' | 'ready' | 'draining' | 'stopped' | 'failed';

const NEXT: Readonly<Record<ContainerState, readonly ContainerState[]>> = {
  placed: ['starting', 'failed'],
  starting: ['ready', 'draining', 'failed'],
  ready: ['draining', 'failed'],
  draining: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

export class IllegalTransitionError extends GpubrokerError {
  constructor(
    readonly containerId: string,
    readonly from: ContainerState,
    readonly to: ContainerState,
  ) {
    super('illegal_transition', `container ${containerId} cannot go from ${from} to ${to}`);
  }
}

export interface Transition {
  readonly state: ContainerState;
  readonly atMs: number;
  /** Why (for draining, stopped and failed). */
  readonly reason?: string;
}

export class ContainerLifecycle {
  private readonly history: Transition[];

  constructor(
    readonly containerId: string,
    private readonly clock: Clock,
    /** Told of every transition, after it happened. */
    private readonly onMove?: (to: ContainerState) => void,
  ) {
    this.history = [{ state: 'placed', atMs: clock.now() }];
  }

  get state(): ContainerState {
    return (this.history[this.history.length - 1] as Transition).state;
  }

  /** Every state it went through, in order, with the time it entered it. */
  get transitions(): readonly Transition[] {
    return this.history;
  }

  /** When it entered `state`, if it did. */
  at(state: ContainerState): number | undefined {
    return this.history.find((t) => t.state === state)?.atMs;
  }

  /** The reason of the last transition that gave one (why it drained, stopped or failed). */
  get reason(): string | undefined {
    for (let i = this.history.length - 1; i >= 0; i--) {
      const reason = this.history[i]?.reason;
      if (reason !== undefined) return reason;
    }
    return undefined;
  }

  /** Placed → ready, once it is ready. */
  get coldStartMs(): number | undefined {
    const ready = this.at('ready');
    return ready === undefined ? undefined : ready - (this.at('placed') as number);
  }

  /** Whether it holds no GPUs any more. */
  get ended(): boolean {
    return this.state === 'stopped' || this.state === 'failed';
  }

  canMoveTo(next: ContainerState): boolean {
    return NEXT[this.state].includes(next);
  }

  /** Moves to `next` now; throws IllegalTransitionError when the machine does not allow it. */
  moveTo(next: ContainerState, reason?: string): void {
    if (!this.canMoveTo(next)) throw new IllegalTransitionError(this.containerId, this.state, next);
    this.history.push({ state: next, atMs: this.clock.now(), ...(reason === undefined ? {} : { reason }) });
    this.onMove?.(next);
  }
}
