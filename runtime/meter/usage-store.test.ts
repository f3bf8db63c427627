/**
 * The usage store on a real in-memory PGlite: any subset of an interval's events, split into batches in any order,
 * leaves the row a crash recovery needs (its greatest checkpoint, its least stop), with nothing lost when a
 * checkpoint comes before the interval's start.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenedDatabase, openDatabase } from '../../broker/db/open-database.ts';
import { usageIntervals } from './schema.ts';
import { type UsageEvent, usageEventId } from './usage-event.ts';
import { UsageStore } from './usage-store.ts';

let database: OpenedDatabase;
let store: UsageStore;
beforeAll(async () => {
  database = await openDatabase({});
  store = new UsageStore(database.db);
});
afterAll(async () => {
  await database.close();
});

const START = 1_000_000;

function event(intervalId: string, type: UsageEvent['type'], atMs: number): UsageEvent {
  return {
    intervalId,
    tenantId: 't',
    kind: 'container',
    subject: 'app/fn',
    gpu: 'L4',
    gpus: 1,
    vendor: 'aws',
    region: 'us-east-1',
    capacityType: 'spot',
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
