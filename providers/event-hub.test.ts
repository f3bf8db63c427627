import { describe, expect, it } from 'vitest';
import { EventHub } from './event-hub.ts';

describe('EventHub', () => {
  it('buffers for slow iterators, delivers in order, and ends on break, abort or close', async () => {
    const hub = new EventHub<number>();
    const early = hub.iterate();
    for (let i = 0; i < 3000; i++) hub.publish(i);
    const seen: number[] = [];
    for await (const n of early) {
      seen.push(n);
      if (n === 2999) break;
    }
    expect(seen).toEqual(Array.from({ length: 3000 }, (_, i) => i));

    const controller = new AbortController();
    const aborted = (async () => {
      const got: number[] = [];
      for await (const n of hub.iterate(controller.signal)) got.push(n);
      return got;
    })();
    hub.publish(7);
    await new Promise<void>((resolve) => setImmediate(resolve));
    controller.abort();
    expect(await aborted).toEqual([7]);

    const closed = hub.iterate();
    hub.publish(8);
    hub.close();
    const rest: number[] = [];
    for await (const n of closed) rest.push(n);
    expect(rest).toEqual([8]);
    const late: number[] = [];
    for await (const n of hub.iterate()) late.push(n);
    expect(late).toEqual([]);
  });
});
