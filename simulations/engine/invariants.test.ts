/** The invariant log: counts checks and violations, and stops the run at the first violation unless told not to. */
import { describe, expect, it } from 'vitest';
import { InvariantLog, InvariantViolationError } from './invariants.ts';

describe('invariants', () => {
  it('stop the run at the first violation, naming the seed, the policy and the simulated time to replay it', () => {
    const seen: string[] = [];
    const log = new InvariantLog(
      (name, message) => seen.push(`${name}: ${message}`),
      () => ({ seed: 42, policy: 'buffer-10', atMs: 3 * 3_600_000 + 7 * 60_000 + 5_250 }),
    );
    log.record('gpuNotDoubleBooked', undefined);
    let thrown: unknown;
    try {
      log.record('gpuNotDoubleBooked', 'GPU 3 of i-1 held by ctr_a and ctr_b');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvariantViolationError);
    expect((thrown as Error).message).toBe(
      'invariant gpuNotDoubleBooked violated at simulated time 3h07m05.250s (policy buffer-10, seed 42): GPU 3 of i-1 held by ctr_a and ctr_b; replay it with --seed 42',
    );
    expect(seen).toEqual(['gpuNotDoubleBooked: GPU 3 of i-1 held by ctr_a and ctr_b']);
    expect(log.results().gpuNotDoubleBooked).toEqual({ checks: 2, violations: 1 });
  });

  it('count and run on with --keep-going', () => {
    const log = new InvariantLog();
    log.record('spendWithinBudget', 'spend $12/h over the budget $10/h');
    log.record('spendWithinBudget', undefined);
    expect(log.results().spendWithinBudget).toEqual({ checks: 2, violations: 1 });
  });
});
