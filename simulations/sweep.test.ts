/**
 * Sweeps: the grid of `--sweep` values over the policies, each point validated as a policy file is, and the cost
 * against p99-wait Pareto frontier.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { presetPolicy } from './policies.ts';
import { paretoFrontier, parseSweep, sweepPolicies } from './sweep.ts';

describe('policy sweeps', () => {
  it('run every combination on the base policy, named by what they change', () => {
    const points = sweepPolicies(
      [presetPolicy('buffer-10')],
      parseSweep(['buffer=0,20', 'spotMaxShare=0.2,0.5']),
    );
    expect(points.map((p) => p.name)).toEqual([
      'buffer=0 spotMaxShare=0.2',
      'buffer=0 spotMaxShare=0.5',
      'buffer=20 spotMaxShare=0.2',
      'buffer=20 spotMaxShare=0.5',
    ]);
    expect(points[3]?.broker.buffer.default.fraction).toBe(0.2);
    expect(points[3]?.broker.spotMaxShare).toBe(0.5);
    // What the sweep does not touch stays the base's.
    expect(points[0]?.broker.planSchedule).toBe(presetPolicy('buffer-10').broker.planSchedule);
    const warm = sweepPolicies([presetPolicy('buffer-0')], parseSweep(['function.bufferContainers=0,4']));
    expect(warm.map((p) => p.function.bufferContainers)).toEqual([0, 4]);
    const twoBases = sweepPolicies(
      [presetPolicy('buffer-0'), presetPolicy('spot-0')],
      parseSweep(['bufferGpus=8']),
    );
    expect(twoBases.map((p) => p.name)).toEqual(['buffer-0 bufferGpus=8', 'spot-0 bufferGpus=8']);
  });

  it('refuse a bad key or value naming --sweep and the field', () => {
    const sweep =
      (...specs: string[]) =>
      () =>
        sweepPolicies([presetPolicy('buffer-10')], parseSweep(specs));
    expect(sweep('buffer')).toThrow(/--sweep: "buffer" is not key=value/);
    expect(sweep('spotMaxShare=2')).toThrow(/--sweep: spotMaxShare=2: spotMaxShare/);
    expect(sweep('noSuchField=1')).toThrow(/--sweep: noSuchField=1: noSuchField: unknown field/);
    expect(sweep('buffer=1,2', 'buffer=3')).toThrow(/buffer is swept twice/);
    expect(sweep('function.concurrency=0')).toThrow(/--sweep: function.concurrency=0: function.concurrency/);
    expect(sweep('__proto__.x=1')).toThrow(/--sweep/);
    expect(
      sweep(
        'buffer=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15',
        'bufferGpus=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16',
      ),
    ).toThrow(/at most 256/);
  });

  it('put on the frontier exactly the points no other is both cheaper and faster than', () => {
    const point = fc.record({
      costUsd: fc.integer({ min: 0, max: 20 }),
      p99Ms: fc.integer({ min: 0, max: 20 }),
    });
    fc.assert(
      fc.property(fc.array(point, { minLength: 1, maxLength: 12 }), (points) => {
        const frontier = paretoFrontier(points);
        expect(frontier.size).toBeGreaterThan(0);
        points.forEach((p, i) => {
          const beaten = points.some(
            (q) =>
              q.costUsd <= p.costUsd && q.p99Ms <= p.p99Ms && (q.costUsd < p.costUsd || q.p99Ms < p.p99Ms),
          );
          expect(frontier.has(i)).toBe(!beaten);
        });
        // The cheapest (and, among the cheapest, the fastest) is always on it.
        const cheapest = Math.min(...points.map((p) => p.costUsd));
        const fastestCheap = Math.min(...points.filter((p) => p.costUsd === cheapest).map((p) => p.p99Ms));
        expect(
          points.some((p, i) => frontier.has(i) && p.costUsd === cheapest && p.p99Ms === fastestCheap),
        ).toBe(true);
      }),
      { seed: 22, numRuns: 300 },
    );
  });
});
