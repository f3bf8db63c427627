/** The simulation's own books on containers: what the step invariants read instead of recounting every container. */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import type { ContainerSpec } from '../../runtime/executor/executor.ts';
import { SimMetrics } from './metrics.ts';

const spec = (containerId: string, instanceId: string, gpuIndices: number[]): ContainerSpec =>
  ({ containerId, instanceId, gpuIndices }) as unknown as ContainerSpec;

describe('SimMetrics', () => {
  it('keeps the live containers GPUs per instance and names the first GPU two of them hold', () => {
    const metrics = new SimMetrics(new VirtualClock(0), 1, () => ({ pending: 0, ready: 0 }));
    metrics.containerStarted(spec('ctr_a', 'i-1', [0, 1]), 0);
    metrics.containerStarted(spec('ctr_b', 'i-1', [2]), 0);
    metrics.containerStarted(spec('ctr_c', 'i-2', [0]), 0);
    expect(metrics.doubleBooked).toBeUndefined();
    expect(metrics.startedSinceCheck).toEqual(['ctr_a', 'ctr_b', 'ctr_c']);
    metrics.containerExited('ctr_a', 5);
    expect([...(metrics.gpuHolders.get('i-1') ?? [])]).toEqual([[2, 'ctr_b']]);
    metrics.containerStarted(spec('ctr_d', 'i-1', [1]), 6);
    expect(metrics.doubleBooked).toBeUndefined();
    metrics.containerStarted(spec('ctr_e', 'i-1', [2]), 7);
    expect(metrics.doubleBooked).toBe('GPU 2 of i-1 is held by ctr_b and ctr_e');
    metrics.containerExited('ctr_c', 8);
    expect(metrics.gpuHolders.has('i-2')).toBe(false);
  });
});
