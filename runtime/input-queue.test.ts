import { describe, expect, it } from 'vitest';
import { InputQueue } from './input-queue.ts';

describe('InputQueue', () => {
  const input = (tenantId: string, n: number) => ({ callId: `${tenantId}-${n}`, tenantId });

  it('serves tenants with queued inputs in round-robin, each in arrival order', () => {
    const q = new InputQueue<{ callId: string; tenantId: string }>();
    for (let n = 1; n <= 4; n++) q.enqueue(input('a', n));
    for (let n = 1; n <= 2; n++) q.enqueue(input('b', n));
    q.enqueue(input('c', 1));
    expect(q.size).toBe(7);
    expect(q.sizeOf('a')).toBe(4);
    const order = [q.take(), q.take(), q.take(), q.take()].map((i) => i?.callId);
    expect(order).toEqual(['a-1', 'b-1', 'c-1', 'a-2']);
    q.enqueue(input('c', 2));
    expect(q.drain().map((i) => i.callId)).toEqual(['b-2', 'a-3', 'c-2', 'a-4']);
    expect(q.take()).toBeUndefined();
    expect(q.size).toBe(0);
  });

  it('puts a retried input first and cancels any input by call id', () => {
    const q = new InputQueue<{ callId: string; tenantId: string }>();
    q.enqueue(input('a', 1));
    q.enqueue(input('a', 2));
    q.enqueue(input('b', 1));
    q.enqueue(input('b', 0), { retry: true });
    expect(q.cancel('a-1')?.callId).toBe('a-1');
    expect(q.cancel('a-1')).toBeUndefined();
    expect(q.has('a-2')).toBe(true);
    expect(() => q.enqueue(input('a', 2))).toThrow(/already queued/);
    expect(q.drain().map((i) => i.callId)).toEqual(['b-0', 'a-2', 'b-1']);
  });
});
