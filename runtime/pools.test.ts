import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import { parseFunctionOptions } from './function-spec.ts';
import { FunctionPools, PoolDriftError } from './pools.ts';
import {
  AppRecords,
  type CallRecord,
  type ContainerRecord,
  type FunctionRecord,
  newFunctionRecord,
} from './records.ts';

const SLOT = {
  instanceId: 'i-1',
  vendor: 'aws',
  region: 'us-east-1',
  capacityType: 'on-demand',
  gpu: 'H100',
  gpusPerInstance: 8,
  microsPerHour: 32_000_000,
  free: [0, 1, 2, 3, 4, 5, 6, 7],
} as const;

function setup() {
  const clock = new VirtualClock(Date.UTC(2026, 11, 7));
  const pools = new FunctionPools({ queuesInputs: false });
  const app = new AppRecords().getOrAdd('t1', 'app', 'b1', {});
  const fn = newFunctionRecord(app, 'square', parseFunctionOptions({ gpu: 'H100', concurrency: 2 }), 'r1');
  app.functions.set('square', fn);
  let n = 0;
  /** A container placed the way the supervisor places one: the pool told of each transition. */
  const place = (): ContainerRecord => {
    const seq = n++;
    return pools.join(
      `ctr_${seq}`,
      seq,
      fn,
      { instanceId: 'i-1', gpu: 'H100', gpuIndices: [seq], slot: SLOT },
      clock,
    );
  };
  const call = (callId: string) => ({ callId }) as CallRecord;
  return { pools, fn, place, call };
}

const kept = (fn: FunctionRecord) => ({ ...fn.size, open: fn.open.size });

describe('FunctionPools', () => {
  it('keeps the size and the open set as containers start, take inputs, fill up, drain and end', () => {
    const { pools, fn, place, call } = setup();
    const a = place();
    const b = place();
    expect(kept(fn)).toEqual({ containers: 2, inFlight: 0, open: 0 });
    a.lifecycle.moveTo('starting');
    a.lifecycle.moveTo('ready');
    expect(kept(fn)).toEqual({ containers: 2, inFlight: 0, open: 1 });
    pools.inputStarted(a, call('c1'));
    pools.inputStarted(a, call('c2'));
    // Two inputs fill a container of concurrency 2.
    expect(kept(fn)).toEqual({ containers: 2, inFlight: 2, open: 0 });
    pools.inputEnded(a, call('c1'));
    pools.refreshOpen(a);
    expect(kept(fn)).toEqual({ containers: 2, inFlight: 1, open: 1 });
    a.lifecycle.moveTo('draining', 'idle');
    expect(kept(fn)).toEqual({ containers: 1, inFlight: 0, open: 0 });
    b.lifecycle.moveTo('failed', 'failed to start');
    expect(kept(fn)).toEqual({ containers: 0, inFlight: 0, open: 0 });
    expect(() => pools.assertOpen(fn)).not.toThrow();
    expect(pools.assertSize(fn)).toEqual([]);
  });

  it('counts a container out once, however often it is told', () => {
    const { pools, fn, place } = setup();
    const a = place();
    pools.uncount(a);
    pools.uncount(a);
    expect(fn.size.containers).toBe(0);
  });

  it('throws PoolDriftError naming the function and both counts when the kept size drifted, repairing nothing', () => {
    const { pools, fn, place } = setup();
    place();
    fn.size.containers = 3;
    expect(() => pools.assertSize(fn)).toThrow(PoolDriftError);
    expect(() => pools.assertSize(fn)).toThrow(
      'app.square: the kept size drifted: kept {"containers":3,"inFlight":0}, counted {"containers":1,"inFlight":0}',
    );
    expect(fn.size.containers).toBe(3);
  });

  it('throws PoolDriftError when the open set misses a container that takes inputs', () => {
    const { pools, fn, place } = setup();
    const a = place();
    a.lifecycle.moveTo('starting');
    a.lifecycle.moveTo('ready');
    fn.open.clear();
    expect(() => pools.assertOpen(fn)).toThrow('app.square: the kept open drifted: kept 0, counted 1');
  });
});
