/**
 * The invoice list of a tenant starts at its first usage or at the first month closed since it was created: closing
 * a month of long ago (which the API allows) neither stretches every list back to it nor makes listing slow.
 * Found by the API fuzz: after `POST /v1/invoices/0001-01/close`, `GET /v1/invoices` took 30 to 50 s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { IdGenerator } from '../../lib/ids.ts';
import { Random } from '../../lib/random.ts';
import { type OpenedDatabase, openDatabase } from '../db/open-database.ts';
import { TokenStore } from '../tokens.ts';
import { InvoiceService } from './invoices.ts';
import { PriceBookStore } from './price-book.ts';

let database: OpenedDatabase;
let clock: VirtualClock;
let tokens: TokenStore;
let billing: InvoiceService;

beforeAll(async () => {
  database = await openDatabase({});
  clock = new VirtualClock(Date.UTC(2026, 9, 15));
  tokens = new TokenStore(database.db, clock, new IdGenerator(clock, new Random(1)));
  billing = new InvoiceService({
    db: database.db,
    clock,
    priceBooks: new PriceBookStore(database.db, clock),
    offerings: () => [],
  });
});
afterAll(async () => {
  await database.close();
});

describe('the invoice list', () => {
  it('is not stretched back by months closed before the tenant existed', async () => {
    const { tenantId } = await tokens.create('alice', 'tenant');
    await clock.advanceTo(Date.UTC(2026, 10, 20));
    for (const month of ['0001-01', '1901-01', '2000-02']) {
      const closed = await billing.close(month);
      expect(closed.map((i) => [i.month, i.status, i.lines])).toEqual([[month, 'closed', []]]);
    }
    await billing.close('2026-10');
    const started = performance.now();
    const list = await billing.invoices(tenantId);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(list.map((i) => [i.month, i.status])).toEqual([
      ['2026-11', 'open'],
      ['2026-10', 'closed'],
    ]);
    // Each month closed long ago is still there when asked for by name.
    expect((await billing.invoice(tenantId, '0001-01')).status).toBe('closed');
  });
});
