/**
 * Spend limits per tenant: billed usage in the last hour and in this calendar month, against the tenant's limits.
 * At a limit new leases get 402; what already runs continues or is stopped, as the tenant's `onSpendLimit` says.
 *
 * Every call and lease request is checked, so a tenant's limits and the check's verdict are kept for
 * SPEND_CHECK_CACHE_MS: a burst of calls costs one database read, and one usage sum when there are limits, a second
 * instead of one each. A tenant may so start work for up to that long past its limit; usage itself reaches the
 * database only at the meter's heartbeat. A change of limits through this broker applies at once (`forget`), through
 * another replica within that time.
 */
import { eq } from 'drizzle-orm';
import type { Clock } from '../../lib/clock.ts';
import { GpubrokerError } from '../../lib/errors.ts';
import { microsToUsd } from '../../lib/money.ts';
import type { Database } from '../db/open-database.ts';
import { tenants } from '../db/schema.ts';
import type { InvoiceService } from './invoices.ts';
import { priceLines } from './invoices.ts';
import { monthOf } from './months.ts';
import { usageGroups } from './usage-groups.ts';

const HOUR = 3_600_000;
/** How long a tenant's limits and the check's verdict are kept. */
export const SPEND_CHECK_CACHE_MS = 1_000;

/** A spend limit was reached: the API answers 402. */
export class SpendLimitError extends GpubrokerError {
  constructor(message: string) {
    super('spend_limit', message);
  }
}

export interface SpendLimits {
  readonly spendLimitHourMicros: number | null;
  readonly spendLimitMonthMicros: number | null;
  readonly onSpendLimit: 'continue' | 'stop';
}

export class SpendLimitService {
  private readonly limits = new Map<string, { limits: SpendLimits | undefined; atMs: number }>();
  private readonly verdicts = new Map<string, { why: string | undefined; atMs: number }>();
  /** Counts forget() calls: a read that began before one is not kept. */
  private epoch = 0;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly invoices: InvoiceService,
    /** Writes usage the meter still buffers, so a limit sees the latest seconds. */
    private readonly flushUsage: () => Promise<void> = async () => {},
  ) {}

  async limitsOf(tenantId: string): Promise<SpendLimits | undefined> {
    const now = this.clock.now();
    const known = this.limits.get(tenantId);
    if (known && now - known.atMs < SPEND_CHECK_CACHE_MS) return known.limits;
    const epoch = this.epoch;
    const [row] = await this.db
      .select({
        spendLimitHourMicros: tenants.spendLimitHourMicros,
        spendLimitMonthMicros: tenants.spendLimitMonthMicros,
        onSpendLimit: tenants.onSpendLimit,
      })
      .from(tenants)
      .where(eq(tenants.id, tenantId));
    if (epoch === this.epoch) this.limits.set(tenantId, { limits: row, atMs: now });
    return row;
  }

  async setLimits(tenantId: string, limits: Partial<SpendLimits>): Promise<void> {
    await this.db.update(tenants).set(limits).where(eq(tenants.id, tenantId));
    this.forget(tenantId);
  }

  /** The tenant's limits changed (written elsewhere): read them again at the next check. */
  forget(tenantId: string): void {
    this.epoch++;
    this.limits.delete(tenantId);
    this.verdicts.delete(tenantId);
  }

  /** Why the tenant may not start anything new (a reached limit), or undefined. */
  async reached(tenantId: string): Promise<string | undefined> {
    const limits = await this.limitsOf(tenantId);
    if (!limits || (limits.spendLimitHourMicros === null && limits.spendLimitMonthMicros === null))
      return undefined;
    await this.flushUsage();
    const now = this.clock.now();
    if (limits.spendLimitHourMicros !== null) {
      const rates = await this.invoices.ratesAt(now);
      const lines = priceLines(await usageGroups(this.db, now - HOUR, now, { tenantId }), rates);
      const spent = lines.reduce((t, l) => t + l.amountMicroUsd, 0);
      if (spent >= limits.spendLimitHourMicros)
        return `spend limit reached: $${usd(spent)} in the last hour, limit $${usd(limits.spendLimitHourMicros)}`;
    }
    if (limits.spendLimitMonthMicros !== null) {
      const invoice = await this.invoices.invoice(tenantId, monthOf(now));
      if (invoice.totalMicroUsd >= limits.spendLimitMonthMicros)
        return `spend limit reached: $${usd(invoice.totalMicroUsd)} this month, limit $${usd(limits.spendLimitMonthMicros)}`;
    }
    return undefined;
  }

  /** Throws SpendLimitError when the tenant has reached a limit. */
  async check(tenantId: string): Promise<void> {
    const now = this.clock.now();
    const known = this.verdicts.get(tenantId);
    const why =
      known !== undefined && now - known.atMs < SPEND_CHECK_CACHE_MS
        ? known.why
        : await this.verdict(tenantId, now);
    if (why) throw new SpendLimitError(why);
  }

  private async verdict(tenantId: string, now: number): Promise<string | undefined> {
    const epoch = this.epoch;
    const why = await this.reached(tenantId);
    // Limits changed while it was summed (forget): this verdict is not kept.
    if (epoch === this.epoch) this.verdicts.set(tenantId, { why, atMs: now });
    return why;
  }

  /** Tenants whose running work must stop (limit reached and `onSpendLimit: 'stop'`), with the reason. */
  async toStop(tenantIds: readonly string[]): Promise<{ tenantId: string; reason: string }[]> {
    const out: { tenantId: string; reason: string }[] = [];
    for (const tenantId of tenantIds) {
      const limits = await this.limitsOf(tenantId);
      if (limits?.onSpendLimit !== 'stop') continue;
      const reason = await this.reached(tenantId);
      if (reason) out.push({ tenantId, reason });
    }
    return out;
  }
}

const usd = (amount: number) => microsToUsd(amount).toFixed(2);
