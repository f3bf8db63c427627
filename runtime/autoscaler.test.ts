import { describe, expect, it } from 'vitest';
import { containersToStop, desiredContainers } from './autoscaler.ts';

describe('autoscaler', () => {
  const load = {
    inFlight: 0,
    queued: 0,
    concurrency: 1,
    bufferContainers: 0,
    minContainers: 0,
    maxContainers: 100,
  };

  it('wants enough containers for the load plus the buffer, within min and max', () => {
    expect(desiredContainers(load)).toBe(0);
    expect(desiredContainers({ ...load, inFlight: 3, queued: 4 })).toBe(7);
    expect(desiredContainers({ ...load, inFlight: 3, queued: 4, concurrency: 4 })).toBe(2);
    expect(desiredContainers({ ...load, queued: 1, bufferContainers: 2 })).toBe(3);
    expect(desiredContainers({ ...load, minContainers: 2 })).toBe(2);
    expect(desiredContainers({ ...load, queued: 500, maxContainers: 10 })).toBe(10);
    expect(desiredContainers({ ...load, bufferContainers: 5, maxContainers: 3 })).toBe(3);
  });

  it('stops containers idle past the window, longest idle first, down to the desired count', () => {
    const live = [
      { containerId: 'c1', idleSinceMs: 5_000 },
      { containerId: 'c2', idleSinceMs: undefined },
      { containerId: 'c3', idleSinceMs: 1_000 },
      { containerId: 'c4', idleSinceMs: 2_000 },
      { containerId: 'c5', idleSinceMs: 55_000 },
    ];
    expect(containersToStop(live, 0, 60_000, 10_000)).toEqual(['c3', 'c4', 'c1']);
    expect(containersToStop(live, 3, 60_000, 10_000)).toEqual(['c3', 'c4']);
    expect(containersToStop(live, 5, 60_000, 10_000)).toEqual([]);
    expect(containersToStop(live, 0, 11_000, 10_000)).toEqual(['c3']);
  });
});
