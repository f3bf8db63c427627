/**
 * The actuator's pending actions on a real PGlite and simulated AWS: an action whose outcome a regional outage
 * left unknown stays pending until it is repeated, the set kept in memory matches the table at every step, and
 * actions another process wrote are seen once the leadership is won again (`forgetPending`); and which throttled
 * provider calls the actuator retries itself.
 */
import { eq } from 'drizzle-orm';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import { loadCatalog } from '../providers/catalog/load-catalog.ts';
import type { Provider } from '../providers/provider.ts';
import { ThrottledError } from '../providers/provider-errors.ts';
import { createSimClouds } from '../providers/sim/sim-clouds.ts';
import { emptyDatabase } from '../test/empty-database.ts';
import { quietAwsScenario } from '../test/fast-aws.ts';
import { type ActionRow, Actuator } from './act.ts';
import type { OpenedDatabase } from './db/open-database.ts';
import { actions } from './db/schema.ts';
import { Fleet, type LiveInstance } from './fleet.ts';

const START = Date.UTC(2026, 10, 23);
const MINUTE = 60_000;

const opened: OpenedDatabase[] = [];
afterEach(async () => {
  for (const d of opened.splice(0)) await d.close();
});

async function setup() {
  const clock = new VirtualClock(START);
  const offering = loadCatalog().find(
    (o) => o.vendor === 'aws' && o.region === 'us-east-1' && o.gpu === 'L4' && o.capacityType === 'on-demand',
  );
  if (!offering) throw new Error('the catalog has no on-demand L4 in aws us-east-1');
  const [aws] = createSimClouds({
    clock,
    offerings: [offering],
    scenario: {
      ...quietAwsScenario(3, MINUTE),
      // us-east-1's API does not answer for the first ten minutes.
      outages: [{ vendor: 'aws', region: 'us-east-1', kind: 'api', startMs: 0, durationMs: 10 * MINUTE }],
    },
  });
  if (!aws) throw new Error('no simulated aws');
  const database = await emptyDatabase();
  opened.push(database);
  await clock.advanceBy(1); // the outage begins
  const fleet = new Fleet(database.db, clock);
  await fleet.load();
  const actuator = () =>
    new Actuator({
      db: database.db,
      clock,
      providers: new Map([['aws', aws]]),
      fleet,
      fleetId: () => 'fleet-1',
      logger: pino({ level: 'silent' }),
    });
  const pendingInTable = async () =>
    (await database.db.select().from(actions).where(eq(actions.status, 'pending'))).map((r) => r.id).sort();
  const ids = (rows: readonly ActionRow[]) => rows.map((r) => r.id).sort();
  return { clock, offering, database, fleet, actuator, pendingInTable, ids };
}

describe('actuator: pending actions', () => {
  it('keeps an action whose outcome an outage left unknown, and drops it once repeated after the outage', async () => {
    const { clock, offering, database, fleet, actuator, pendingInTable, ids } = await setup();
    const act = actuator();
    expect(await act.pending()).toEqual([]);

    const outcome = await act.provision('plan-1', 'act-1', 'aws', offering.id, 2);
    expect(outcome.status).toBe('pending');
    expect(ids(await act.pending())).toEqual(['act-1']);
    expect(await pendingInTable()).toEqual(['act-1']);

    // Still down: repeating it changes nothing.
    const [first] = await act.pending();
    expect((await act.runProvision(first as ActionRow)).status).toBe('pending');
    expect(await pendingInTable()).toEqual(['act-1']);

    await clock.advanceBy(11 * MINUTE);
    const [again] = await act.pending();
    const done = await act.runProvision(again as ActionRow);
    expect(done.status).toBe('done');
    expect(done.instanceIds).toHaveLength(2);
    expect(
      fleet
        .all()
        .map((i) => i.id)
        .sort(),
    ).toEqual([...done.instanceIds].sort());
    expect(await act.pending()).toEqual([]);
    expect(await pendingInTable()).toEqual([]);
    const [stored] = await database.db.select().from(actions).where(eq(actions.id, 'act-1'));
    expect(stored).toMatchObject({ status: 'done', error: null, count: 2, updatedAt: clock.now() });
    expect(stored?.instanceIds).toEqual(done.instanceIds);
  });

  it('a new process finds what a crashed one left pending; a leader reads the table again after forgetPending', async () => {
    const { offering, database, actuator, pendingInTable, ids } = await setup();
    const crashed = actuator();
    await crashed.provision('plan-1', 'act-1', 'aws', offering.id, 1);

    const next = actuator();
    expect(ids(await next.pending())).toEqual(['act-1']);

    // Another replica led for a while and left an action of its own pending.
    await database.db.insert(actions).values({
      id: 'act-2',
      planId: 'plan-2',
      kind: 'provision',
      vendor: 'aws',
      offeringId: offering.id,
      count: 1,
      instanceIds: [],
      status: 'pending',
      error: null,
      createdAt: START + 1,
      updatedAt: START + 1,
    });
    expect(ids(await next.pending())).toEqual(['act-1']);
    next.forgetPending();
    expect(ids(await next.pending())).toEqual(['act-1', 'act-2']);
    expect(ids(await next.pending())).toEqual(await pendingInTable());
  });
});

describe('actuator: throttled provider calls', () => {
  it('retries a throttle its provider did not retry, after retryAfterMs doubled each time, and never one an adapter retried already', async () => {
    const clock = new VirtualClock(START);
    const database = await emptyDatabase();
    opened.push(database);
    const fleet = new Fleet(database.db, clock);
    await fleet.load();
    const calls: number[] = [];
    let throttles = 0;
    let retried = false;
    const provider = {
      vendor: 'aws',
      terminate: async () => {
        calls.push(clock.now());
        if (calls.length <= throttles) throw new ThrottledError('aws', 100, 'request rate exceeded', retried);
      },
    } as unknown as Provider;
    const act = new Actuator({
      db: database.db,
      clock,
      providers: new Map([['aws', provider]]),
      fleet,
      fleetId: () => 'fleet-1',
      logger: pino({ level: 'silent' }),
    });
    const targets = [{ id: 'i-1', offeringId: 'aws-l4' }] as unknown as LiveInstance[];
    /** Runs the clock until `work` ends (its database writes are real I/O, so the event loop turns in between). */
    const settle = async <T>(work: Promise<T>): Promise<T> => {
      let ended = false;
      const tracked = work.finally(() => {
        ended = true;
      });
      while (!ended) {
        await new Promise((resolve) => setImmediate(resolve));
        await clock.runUntilIdle();
      }
      return tracked;
    };

    // A simulated cloud throttles without waiting: three retries, 100, 200 and 400 ms apart.
    throttles = 3;
    expect((await settle(act.terminate('plan-1', 'stop-1', 'aws', targets))).status).toBe('done');
    expect(calls.map((at) => at - (calls[0] as number))).toEqual([0, 100, 300, 700]);

    // One more throttle than retries: the terminate stays pending for the next tick.
    calls.length = 0;
    throttles = 4;
    expect((await settle(act.terminate('plan-1', 'stop-2', 'aws', targets))).status).toBe('pending');
    expect(calls).toHaveLength(4);

    // An adapter that retried already (its ThrottledError says so) is not retried again.
    calls.length = 0;
    throttles = 1;
    retried = true;
    expect((await settle(act.terminate('plan-1', 'stop-3', 'aws', targets))).status).toBe('pending');
    expect(calls).toHaveLength(1);
  });
});
