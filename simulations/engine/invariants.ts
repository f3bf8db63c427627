/**
 * Invariants checked while a simulation runs, each counted (checks, violations) for the results:
 * - `gpuNotDoubleBooked`: no GPU is held by two containers, or by a container and a lease, and no container sits
 *   on an instance the fleet no longer has (from the executor's own record of where it started each container);
 * - `spendWithinBudget`: the hourly price of the instances the plan counts (held, not draining or being stopped;
 *   reserved excluded, as in the model) never exceeds the policy's budget (no check without a budget);
 * - `meterTracksContainers`: the meter's open container intervals are exactly the containers alive;
 * - `billedUsageEqualsIntervals` (at the end): every container interval in the usage table has the start, end and
 *   GPUs the executor saw, the billed GPU-seconds equal Σ ⌈interval⌉ × GPUs, and the leases' billed GPU time equals
 *   the time the simulation's leases were held.
 */

export type InvariantName =
  | 'gpuNotDoubleBooked'
  | 'spendWithinBudget'
  | 'meterTracksContainers'
  | 'billedUsageEqualsIntervals';

export const INVARIANTS: readonly InvariantName[] = [
  'gpuNotDoubleBooked',
  'spendWithinBudget',
  'meterTracksContainers',
  'billedUsageEqualsIntervals',
];

export class InvariantLog {
  private readonly counts = new Map<InvariantName, { checks: number; violations: number }>(
    INVARIANTS.map((name) => [name, { checks: 0, violations: 0 }]),
  );

  constructor(private readonly onViolation?: (name: InvariantName, message: string) => void) {}

  /** Counts one check; `violation` is undefined when it held, else what went wrong. */
  record(name: InvariantName, violation: string | undefined): void {
    const count = this.counts.get(name) as { checks: number; violations: number };
    count.checks++;
    if (violation === undefined) return;
    count.violations++;
    this.onViolation?.(name, violation);
  }

  results(): Record<string, { checks: number; violations: number }> {
    return Object.fromEntries([...this.counts].map(([name, c]) => [name, { ...c }]));
  }
}
