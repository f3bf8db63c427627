import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import { ContainerLifecycle, type ContainerState, IllegalTransitionError } from './container.ts';

describe('ContainerLifecycle', () => {
  it('stamps each transition on the clock and measures the cold start', async () => {
    const clock = new VirtualClock(1_000);
    const c = new ContainerLifecycle('ctr_1', clock);
    await clock.advanceBy(10);
    c.moveTo('starting');
    await clock.advanceBy(2_500);
    c.moveTo('ready');
    await clock.advanceBy(60_000);
    c.moveTo('draining', 'idle');
    await clock.advanceBy(100);
    c.moveTo('stopped', 'stopped');
    expect(c.transitions).toEqual([
      { state: 'placed', atMs: 1_000 },
      { state: 'starting', atMs: 1_010 },
      { state: 'ready', atMs: 3_510 },
      { state: 'draining', atMs: 63_510, reason: 'idle' },
      { state: 'stopped', atMs: 63_610, reason: 'stopped' },
    ]);
    expect(c.coldStartMs).toBe(2_510);
    expect(c.ended).toBe(true);
    expect(c.reason).toBe('stopped');
  });

  it('fails from placed, starting, ready or draining', () => {
    const paths: ContainerState[][] = [
      [],
      ['starting'],
      ['starting', 'ready'],
      ['starting', 'ready', 'draining'],
      ['starting', 'draining'],
    ];
    for (const path of paths) {
      const c = new ContainerLifecycle('ctr_1', new VirtualClock());
      for (const state of path) c.moveTo(state);
      c.moveTo('failed', 'crashed');
      expect(c.state).toBe('failed');
    }
  });

  it.each<[ContainerState[], ContainerState]>([
    [[], 'ready'],
    [[], 'draining'],
    [[], 'stopped'],
    [['starting'], 'stopped'],
    [['starting', 'ready'], 'stopped'],
    [['starting', 'ready'], 'starting'],
    [['starting', 'ready', 'draining'], 'ready'],
    [['starting', 'ready', 'draining', 'stopped'], 'failed'],
    [['failed'], 'starting'],
  ])('after %j refuses %s', (path, next) => {
    const c = new ContainerLifecycle('ctr_1', new VirtualClock());
    for (const state of path) c.moveTo(state);
    expect(() => c.moveTo(next)).toThrow(IllegalTransitionError);
    expect(c.coldStartMs).toBe(path.includes('ready') ? 0 : undefined);
  });
});
