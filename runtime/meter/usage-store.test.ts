/**
 * The usage store and the meter on a real in-memory PGlite: any subset of an interval's events, split into batches
 * in any order, leaves the row a crash recovery needs (its greatest checkpoint, its least stop), with nothing lost
 * when a checkpoint comes before the interval's start; a meter's checkpoint vouches for its own open intervals
 * only, lands with its batch or not at all, and is where a crash's recovery closes them.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenedDatabase } from '../../broker/db/open-database.ts';
import { VirtualClock } from '../../lib/clock.ts';
import { emptyDatabase } from '../../test/empty-database.ts';
import { Meter } from './meter.ts';
import { usageIntervals } from './schema.ts';
import { type UsageEvent, usageEventId } from './usage-event.ts';
import { UsageStore } from './usage-store.ts';

let database: OpenedDatabase;
let store: UsageStore;
beforeAll(async () => {
  database = await emptyDatabase();
  store = new UsageStore(database.db);
});
afterAll(async () => {
  await database.close();
});

const START = 1_000_000;

/** An interval's fixed facts, as the meter opens it (its start comes from the meter's clock). */
function facts(intervalId: string) {
  return {
    intervalId,
    tenantId: 't',
    kind: 'container' as const,
    subject: 'app/fn',
    gpu: 'L4',
    gpus: 1,
    vendor: 'aws',
    region: 'us-east-1',
    capacityType: 'spot',
  };
}

function event(intervalId: string, type: UsageEvent['type'], atMs: number, meterId?: string): UsageEvent {
  return {
    ...(meterId === undefined ? {} : { meterId }),
    ...facts(intervalId),
    startMs: START,
    id: usageEventId(intervalId, type, atMs),
    type,
    atMs,
  };
}

async function row(id: string) {
  const rows = await database.db.select().from(usageIntervals);
  return rows.find((r) => r.id === id);
}

describe('UsageStore.ingest', () => {
  it('records the interval of a checkpoint that comes before its start, and never moves a checkpoint back', async () => {
    await store.ingest([event('early', 'heartbeat', START + 30)]);
    expect(await row('early')).toMatchObject({ startMs: START, checkpointMs: START + 30, endMs: null });
    await store.ingest([event('early', 'start', START)]);
    await store.ingest([event('early', 'heartbeat', START + 60)]);
    await store.ingest([event('early', 'heartbeat', START + 45)]);
    expect(await row('early')).toMatchObject({ checkpointMs: START + 60, endMs: null });
  });

  it('for any events of an interval, in any batches and order: greatest checkpoint, least stop', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            type: fc.constantFrom('start', 'heartbeat', 'heartbeat', 'stop') as fc.Arbitrary<
              UsageEvent['type']
            >,
            atMs: fc.integer({ min: START, max: START + 10_000 }),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 12, maxLength: 12 }),
        async (drawn, cuts) => {
          const id = `interval-${n++}`;
          const events = drawn.map((e) => event(id, e.type, e.atMs));
          // Each batch also checkpoints an interval recorded earlier.
          await store.ingest([event(`${id}-known`, 'start', START)]);
          for (let i = 0, k = 0; i < events.length; i += cuts[k++] as number)
            await store.ingest([
              ...events.slice(i, i + (cuts[k] as number)),
              event(`${id}-known`, 'heartbeat', START + i),
            ]);
          const stops = events.filter((e) => e.type === 'stop').map((e) => e.atMs);
          expect(await row(id)).toMatchObject({
            startMs: START,
            checkpointMs: Math.max(...events.map((e) => e.atMs)),
            endMs: stops.length > 0 ? Math.min(...stops) : null,
          });
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('UsageStore: meter checkpoints', () => {
  it('vouch for the open intervals of their own meter only, never move back, and close them on recovery', async () => {
    await store.ingest([
      event('m1-open', 'start', START, 'm1'),
      event('m1-stopped', 'start', START, 'm1'),
      event('m2-open', 'start', START, 'm2'),
    ]);
    await store.ingest([event('m1-stopped', 'stop', START + 10, 'm1')], { meterId: 'm1', atMs: START + 50 });
    await store.ingest([], { meterId: 'm1', atMs: START + 40 });
    expect(await store.checkpointOf('m1')).toBe(START + 50);
    expect(await store.checkpointOf('m2')).toBeUndefined();
    const ends = async () =>
      Object.fromEntries(
        (await store.intervals()).filter((r) => r.id.startsWith('m')).map((r) => [r.id, r.observedEndMs]),
      );
    expect(await ends()).toEqual({ 'm1-open': START + 50, 'm1-stopped': START + 10, 'm2-open': START });
    // The spans are the intervals' own columns, with the same observed ends.
    expect(await store.spans()).toEqual(
      (await store.intervals()).map(({ id, kind, gpus, startMs, endMs, observedEndMs }) => ({
        id,
        kind,
        gpus,
        startMs,
        endMs,
        observedEndMs,
      })),
    );

    const closed = await store.closeOpenAtCheckpoint();
    expect(closed.filter((id) => id.startsWith('m')).sort()).toEqual(['m1-open', 'm2-open']);
    expect(await row('m1-open')).toMatchObject({ endMs: START + 50, endedBy: 'recovered' });
    expect(await row('m2-open')).toMatchObject({ endMs: START, endedBy: 'recovered' });
    // Closed is closed: a later checkpoint of its meter does not reopen or extend it.
    await store.ingest([], { meterId: 'm1', atMs: START + 90 });
    expect(await ends()).toEqual({ 'm1-open': START + 50, 'm1-stopped': START + 10, 'm2-open': START });
  });

  it('is recorded with its batch or not at all', async () => {
    const broken = { ...event('bad', 'start', START, 'm3'), gpus: 1.5 };
    await expect(store.ingest([broken], { meterId: 'm3', atMs: START + 5 })).rejects.toThrow();
    expect(await store.checkpointOf('m3')).toBeUndefined();
    expect(await row('bad')).toBeUndefined();
  });
});

describe('Meter', () => {
  it('writes one checkpoint per heartbeat, and a crash bills its open intervals up to the last one', async () => {
    const clock = new VirtualClock(START);
    const meter = new Meter({ clock, store, heartbeatMs: 5_000, meterId: 'meter-a' });
    meter.start();
    meter.openInterval(facts('a-long'));
    await clock.advanceBy(2_000);
    meter.openInterval(facts('a-short'));
    await clock.advanceBy(2_000);
    meter.closeInterval('a-short');
    for (let i = 0; i < 4; i++) {
      await clock.advanceBy(5_000);
      await meter.flush();
    }
    // Heartbeats at 5, 10, 15 and 20 s: the rows were written once (start; start and stop), the checkpoint moved.
    expect(await row('a-long')).toMatchObject({ meterId: 'meter-a', checkpointMs: START, endMs: null });
    expect(await row('a-short')).toMatchObject({ startMs: START + 2_000, endMs: START + 4_000 });
    expect(await store.checkpointOf('meter-a')).toBe(START + 20_000);

    // The process dies at 24 s (its clock goes no further); the next start closes what it left open at its
    // last checkpoint.
    expect(await store.closeOpenAtCheckpoint()).toContain('a-long');
    expect(await row('a-long')).toMatchObject({ endMs: START + 20_000, endedBy: 'recovered' });
  });
});
