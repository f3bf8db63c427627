/**
 * The spend check keeps a tenant's limits and its verdict for SPEND_CHECK_CACHE_MS: a burst of calls costs one read,
 * a change of limits through this broker (forget) applies at once, one written elsewhere within that time.
 */
import { eq } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { IdGenerator } from '../../lib/ids.ts';
import { Random } from '../../lib/random.ts';
import { emptyDatabase } from '../../test/empty-database.ts';
import type { OpenedDatabase } from '../db/open-database.ts';
import { tenants } from '../db/schema.ts';
import { TokenStore } from '../tokens.ts';
import type { InvoiceService } from './invoices.ts';
import { SPEND_CHECK_CACHE_MS, SpendLimitError, SpendLimitService } from './spend-limits.ts';

let opened: OpenedDatabase | undefined;
afterEach(async () => {
  await opened?.close();
  opened = undefined;
});

/** A tenant billed `billed` micro-USD this month (the invoice is all the month limit reads), and its spend check. */
async function setUp(billed: number) {
  opened = await emptyDatabase();
  const { db } = opened;
  const clock = new VirtualClock(Date.UTC(2026, 11, 7, 12));
  const { tenantId } = await new TokenStore(db, clock, new IdGenerator(clock, new Random(1))).create(
    'alice',
    'tenant',
  );
  let invoiceReads = 0;
  const invoices = {
    invoice: async () => {
      invoiceReads++;
      return { totalMicroUsd: billed };
    },
  } as unknown as InvoiceService;
  const spend = new SpendLimitService(db, clock, invoices);
  const setMonthLimit = (micros: number | null) =>
    db.update(tenants).set({ spendLimitMonthMicros: micros }).where(eq(tenants.id, tenantId));
  return { clock, spend, tenantId, setMonthLimit, invoiceReads: () => invoiceReads };
}

describe('SpendLimitService.check', () => {
  it('keeps the verdict for SPEND_CHECK_CACHE_MS: a limit written elsewhere applies after it, not per call', async () => {
    const { clock, spend, tenantId, setMonthLimit, invoiceReads } = await setUp(5_000_000);
    await setMonthLimit(10_000_000);
    await spend.check(tenantId);
    for (let i = 0; i < 10; i++) await spend.check(tenantId);
    expect(invoiceReads()).toBe(1);
    // Lowered below what was billed by another replica (nothing told this one): refused once the time is up.
    await setMonthLimit(1_000_000);
    await clock.advanceBy(SPEND_CHECK_CACHE_MS - 1);
    await expect(spend.check(tenantId)).resolves.toBeUndefined();
    await clock.advanceBy(1);
    await expect(spend.check(tenantId)).rejects.toBeInstanceOf(SpendLimitError);
    await expect(spend.check(tenantId)).rejects.toThrow(
      /spend limit reached: \$5\.00 this month, limit \$1\.00/,
    );
    expect(invoiceReads()).toBe(2);
  });

  it('applies a change made through this broker at once (forget)', async () => {
    const { spend, tenantId, setMonthLimit } = await setUp(5_000_000);
    await spend.check(tenantId);
    await setMonthLimit(1_000_000);
    spend.forget(tenantId);
    await expect(spend.check(tenantId)).rejects.toBeInstanceOf(SpendLimitError);
    await setMonthLimit(null);
    spend.forget(tenantId);
    await expect(spend.check(tenantId)).resolves.toBeUndefined();
  });
});
