import { describe, expect, it } from 'vitest';
import { type FreeGpuSlot, fitThenPrice, priceThenFit, priceThenRoomiest } from './capacity.ts';

function slot(instanceId: string, free: number, microsPerHour: number, gpusPerInstance = 8): FreeGpuSlot {
  return {
    instanceId,
    vendor: 'aws',
    region: 'us-east-1',
    capacityType: 'on-demand',
    gpu: 'H100',
    gpusPerInstance,
    microsPerHour,
    free: Array.from({ length: free }, (_, i) => i),
  };
}

const ids = (slots: FreeGpuSlot[]) => slots.map((s) => s.instanceId);

describe('slot orders', () => {
  // Per GPU: dear 2, snug 1, roomy 1, cheap 0.5 (micro-USD an hour).
  const slots = [slot('dear', 1, 16), slot('roomy', 6, 8), slot('snug', 2, 8), slot('cheap', 7, 4)];

  it('ranks containers by fit, then price, and leases by price, then fit or room', () => {
    expect(ids([...slots].sort(fitThenPrice))).toEqual(['dear', 'snug', 'roomy', 'cheap']);
    expect(ids([...slots].sort(priceThenFit))).toEqual(['cheap', 'snug', 'roomy', 'dear']);
    expect(ids([...slots].sort(priceThenRoomiest))).toEqual(['cheap', 'roomy', 'snug', 'dear']);
  });

  it('compares prices per GPU exactly and ends every tie on the instance id', () => {
    // 10 micros an hour over 3 GPUs and 20 over 6 are the same price per GPU (10·6 = 20·3): the smaller id wins.
    const a = slot('b-three', 2, 10, 3);
    const b = slot('a-six', 2, 20, 6);
    for (const order of [fitThenPrice, priceThenFit, priceThenRoomiest]) {
      expect(order(a, b)).toBeGreaterThan(0);
      expect(order(b, a)).toBeLessThan(0);
      expect(order(a, a)).toBe(0);
    }
  });
});
