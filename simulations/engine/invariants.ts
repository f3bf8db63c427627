/**
 * Invariants checked while a simulation runs, each counted (checks, violations) for the results:
 * - `gpuNotDoubleBooked`: no GPU is held by two containers, or by a container and a lease, and no container sits
 *   on an instance the fleet no longer has (from the executor's own record of where it started each container);
 * - `spendWithinBudget`: the hourly price of the instances the plan counts (held, not draining or being stopped;
 *   reserved excluded, as in the model) never exceeds the policy's budget (no check without a budget);
 * - `meterTracksContainers`: the meter's open container intervals are exactly the containers alive;
 * - `noInputLost`: every call the workload submitted is finished, queued or running in the runtime;
 * - `billedUsageEqualsIntervals` (at the end): every container interval in the usage table has the start, end and
 *   GPUs the executor saw, the billed GPU-seconds equal Σ ⌈interval⌉ × GPUs, and the leases' billed GPU time equals
 *   the time the simulation's leases were held.
 */

export type InvariantName =
  | 'gpuNotDoubleBooked'
  | 'spendWithinBudget'
  | 'meterTracksContainers'
  | 'billedUsageEqualsIntervals'
  | 'noInputLost';

export const INVARIANTS: readonly InvariantName[] = [
  'gpuNotDoubleBooked',
  'spendWithinBudget',
  'meterTracksContainers',
  'billedUsageEqualsIntervals',
  'noInputLost',
];

/**
 * A violated invariant stops the run (unless told to keep going): the message names the seed, the policy and the
 * simulated time, so that `--seed N` replays it to the same moment.
 */
export class InvariantViolationError extends Error {
  constructor(
    readonly invariant: InvariantName,
    readonly detail: string,
    readonly seed: number,
    readonly policy: string,
    /** Simulated time since the start of the run, ms. */
    readonly atMs: number,
  ) {
    super(
      `invariant ${invariant} violated at simulated time ${formatSimTime(atMs)} (policy ${policy}, seed ${seed}): ${detail}; replay it with --seed ${seed}`,
    );
    this.name = 'InvariantViolationError';
  }
}

function formatSimTime(ms: number): string {
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = ((ms % 60_000) / 1000).toFixed(3);
  return `${h}h${String(m).padStart(2, '0')}m${s.padStart(6, '0')}s`;
}

export class InvariantLog {
  private readonly counts = new Map<InvariantName, { checks: number; violations: number }>(
    INVARIANTS.map((name) => [name, { checks: 0, violations: 0 }]),
  );

  constructor(
    private readonly onViolation?: (name: InvariantName, message: string) => void,
    /** Set: the first violation throws InvariantViolationError with what this gives (seed, policy, time). */
    private readonly failFast?: () => { seed: number; policy: string; atMs: number },
  ) {}

  /** Counts one check; `violation` is undefined when it held, else what went wrong. */
  record(name: InvariantName, violation: string | undefined): void {
    const count = this.counts.get(name) as { checks: number; violations: number };
    count.checks++;
    if (violation === undefined) return;
    count.violations++;
    this.onViolation?.(name, violation);
    if (this.failFast) {
      const { seed, policy, atMs } = this.failFast();
      throw new InvariantViolationError(name, violation, seed, policy, atMs);
    }
  }

  results(): Record<string, { checks: number; violations: number }> {
    return Object.fromEntries([...this.counts].map(([name, c]) => [name, { ...c }]));
  }
}
