/**
 * Invoices: per tenant per calendar month (UTC), one line per GPU type × function or lease × rate.
 *
 * Rounding: each usage interval's part inside the month is billed in whole seconds, rounded up; a line's amount
 * is gpuSeconds × rate + coreSeconds × coreRate + ⌈MiB-seconds × GiB-rate / 1024⌉, all integer micro-USD, and a
 * total is the exact sum of its lines. A month is priced with the price book in force at its end (or now).
 *
 * An open invoice is computed from the usage each time, so late usage inside its month is on it. Closing a month
 * freezes every tenant's invoice for it. Usage that arrives later for a closed month is billed once, on the first
 * open month after it, as lines marked `lateFrom`.
 */
import { and, asc, eq, gte } from 'drizzle-orm';
import type { Clock } from '../../lib/clock.ts';
import { NotFoundError, ValidationError } from '../../lib/errors.ts';
import type { Offering } from '../../providers/catalog/offering.ts';
import type { Database } from '../db/open-database.ts';
import { invoices, tenants } from '../db/schema.ts';
import { monthBounds, monthOf } from './months.ts';
import { type PriceBookStore, Rates } from './price-book.ts';
import { type UsageGroup, usageGroups } from './usage-groups.ts';

export interface InvoiceLine {
  readonly gpu: string;
  readonly function?: string;
  readonly lease?: string;
  readonly seconds: number;
  readonly gpuSeconds: number;
  readonly coreSeconds: number;
  readonly mibSeconds: number;
  readonly rateMicroUsd: number;
  readonly amountMicroUsd: number;
  /** Late usage of this closed month, billed here. */
  readonly lateFrom?: string;
}

export interface Invoice {
  readonly tenant: string;
  readonly month: string;
  readonly status: 'open' | 'closed';
  readonly priceBookVersion: number;
  readonly lines: InvoiceLine[];
  readonly totalMicroUsd: number;
}

type Quantities = Pick<InvoiceLine, 'seconds' | 'gpuSeconds' | 'coreSeconds' | 'mibSeconds'>;

const lineKey = (l: Pick<InvoiceLine, 'gpu' | 'function' | 'lease' | 'rateMicroUsd'>) =>
  `${l.gpu}|${l.function ?? ''}|${l.lease ?? ''}|${l.rateMicroUsd}`;

/** Prices usage groups into invoice lines (merged by GPU type × subject × rate), sorted for stable output. */
export function priceLines(groups: readonly UsageGroup[], rates: Rates): InvoiceLine[] {
  const lines = new Map<string, InvoiceLine>();
  for (const g of groups) {
    const rateMicroUsd = rates.rateFor(g);
    const subject = g.kind === 'lease' ? { lease: g.subject } : { function: g.subject };
    const key = lineKey({ gpu: g.gpu, ...subject, rateMicroUsd });
    const before = lines.get(key);
    lines.set(
      key,
      withAmount(
        {
          gpu: g.gpu,
          ...subject,
          seconds: (before?.seconds ?? 0) + g.seconds,
          gpuSeconds: (before?.gpuSeconds ?? 0) + g.gpuSeconds,
          coreSeconds: (before?.coreSeconds ?? 0) + g.coreSeconds,
          mibSeconds: (before?.mibSeconds ?? 0) + g.mibSeconds,
          rateMicroUsd,
        },
        rates,
      ),
    );
  }
  return [...lines.values()].sort((a, b) => lineKey(a).localeCompare(lineKey(b)));
}

function withAmount(line: Omit<InvoiceLine, 'amountMicroUsd'>, rates: Rates): InvoiceLine {
  const amountMicroUsd =
    line.gpuSeconds * line.rateMicroUsd +
    line.coreSeconds * rates.coreRate +
    Math.ceil((line.mibSeconds * rates.gibRate) / 1024);
  return { ...line, amountMicroUsd };
}

export interface InvoiceServiceOptions {
  readonly db: Database;
  readonly clock: Clock;
  readonly priceBooks: PriceBookStore;
  /** Offerings whose list prices make the default rates. */
  readonly offerings: () => readonly Offering[];
}

export class InvoiceService {
  constructor(private readonly o: InvoiceServiceOptions) {}

  /** The tenant's invoice for a month: frozen if closed, computed otherwise. */
  async invoice(tenantId: string, month: string): Promise<Invoice> {
    const { startMs, endMs } = monthBounds(month);
    const tenant = await this.tenantName(tenantId);
    const [closed] = await this.o.db
      .select()
      .from(invoices)
      .where(and(eq(invoices.tenantId, tenantId), eq(invoices.month, month)));
    if (closed)
      return {
        tenant,
        month,
        status: 'closed',
        priceBookVersion: closed.priceBookVersion,
        lines: closed.lines as InvoiceLine[],
        totalMicroUsd: closed.totalMicros,
      };
    const rates = await this.ratesAt(Math.min(endMs, this.o.clock.now()));
    const lines = [
      ...priceLines(await usageGroups(this.o.db, startMs, endMs, { tenantId }), rates),
      ...(await this.lateLines(tenantId, month)),
    ];
    return {
      tenant,
      month,
      status: 'open',
      priceBookVersion: rates.version.version,
      lines,
      totalMicroUsd: sum(lines),
    };
  }

  /**
   * Every month from the tenant's first usage (or first invoice closed since it was created) to now, newest first.
   * A month closed before the tenant existed holds nothing of it and does not stretch the list back: closing, say,
   * 1901-01 would otherwise make every listing compute some 1,500 empty invoices per tenant.
   */
  async invoices(tenantId: string): Promise<Invoice[]> {
    const now = monthOf(this.o.clock.now());
    const created = monthOf(await this.tenantCreatedAt(tenantId));
    const [first] = await this.o.db
      .select({ month: invoices.month })
      .from(invoices)
      .where(and(eq(invoices.tenantId, tenantId), gte(invoices.month, created)))
      .orderBy(asc(invoices.month))
      .limit(1);
    const firstUsage = await this.firstUsageMonth(tenantId);
    const start =
      [first?.month, firstUsage, now].filter((m): m is string => m !== undefined).sort()[0] ?? now;
    const months: string[] = [];
    for (let at = monthBounds(start).startMs; monthOf(at) <= now; at = monthBounds(monthOf(at)).endMs)
      months.push(monthOf(at));
    const all = await Promise.all(months.map((m) => this.invoice(tenantId, m)));
    return all.reverse();
  }

  /**
   * Freezes every tenant's invoice for a month that has ended (ValidationError otherwise). Idempotent: a month
   * already closed for a tenant stays as it was.
   */
  async close(month: string): Promise<Invoice[]> {
    const { endMs } = monthBounds(month);
    if (endMs > this.o.clock.now()) throw new ValidationError('month', `${month} has not ended yet`);
    const closed: Invoice[] = [];
    for (const tenant of await this.o.db.select({ id: tenants.id }).from(tenants)) {
      const invoice = await this.invoice(tenant.id, month);
      if (invoice.status === 'open')
        await this.o.db
          .insert(invoices)
          .values({
            tenantId: tenant.id,
            month,
            priceBookVersion: invoice.priceBookVersion,
            lines: invoice.lines,
            totalMicros: invoice.totalMicroUsd,
            closedAt: this.o.clock.now(),
          })
          .onConflictDoNothing();
      closed.push(await this.invoice(tenant.id, month));
    }
    return closed;
  }

  /** The rates in force at `atMs`. */
  async ratesAt(atMs: number): Promise<Rates> {
    return new Rates(await this.o.priceBooks.at(atMs), this.o.offerings());
  }

  /**
   * Usage recorded after a month was closed, billed on `month` when it is the first open month after it: what the
   * usage prices to now (with the closed invoice's price book) minus what the closed invoice and later invoices
   * already billed for it.
   */
  private async lateLines(tenantId: string, month: string): Promise<InvoiceLine[]> {
    const closedRows = await this.o.db
      .select()
      .from(invoices)
      .where(eq(invoices.tenantId, tenantId))
      .orderBy(asc(invoices.month));
    const closedMonths = new Set(closedRows.map((r) => r.month));
    const late: InvoiceLine[] = [];
    for (const row of closedRows) {
      if (row.month >= month) break;
      // Only the first open month after a closed one takes its late usage.
      let next = monthOf(monthBounds(row.month).endMs);
      while (closedMonths.has(next)) next = monthOf(monthBounds(next).endMs);
      if (next !== month) continue;
      const { startMs, endMs } = monthBounds(row.month);
      // The rates the month was closed with (those in force at its end), so that what it billed matches line by line.
      const rates = await this.ratesAt(Math.min(endMs, row.closedAt));
      const now = priceLines(await usageGroups(this.o.db, startMs, endMs, { tenantId }), rates);
      const billed = new Map<string, Quantities>();
      const add = (l: InvoiceLine) => {
        const b = billed.get(lineKey(l));
        billed.set(lineKey(l), {
          seconds: (b?.seconds ?? 0) + l.seconds,
          gpuSeconds: (b?.gpuSeconds ?? 0) + l.gpuSeconds,
          coreSeconds: (b?.coreSeconds ?? 0) + l.coreSeconds,
          mibSeconds: (b?.mibSeconds ?? 0) + l.mibSeconds,
        });
      };
      for (const l of row.lines as InvoiceLine[]) if (l.lateFrom === undefined) add(l);
      for (const other of closedRows)
        for (const l of other.lines as InvoiceLine[]) if (l.lateFrom === row.month) add(l);
      for (const line of now) {
        const b = billed.get(lineKey(line));
        const delta = {
          seconds: line.seconds - (b?.seconds ?? 0),
          gpuSeconds: line.gpuSeconds - (b?.gpuSeconds ?? 0),
          coreSeconds: line.coreSeconds - (b?.coreSeconds ?? 0),
          mibSeconds: line.mibSeconds - (b?.mibSeconds ?? 0),
        };
        if (delta.gpuSeconds > 0 || delta.coreSeconds > 0 || delta.mibSeconds > 0)
          late.push(
            withAmount(
              {
                gpu: line.gpu,
                ...(line.function !== undefined ? { function: line.function } : {}),
                ...(line.lease !== undefined ? { lease: line.lease } : {}),
                ...delta,
                rateMicroUsd: line.rateMicroUsd,
                lateFrom: row.month,
              },
              rates,
            ),
          );
      }
    }
    return late;
  }

  private async tenantName(tenantId: string): Promise<string> {
    const [row] = await this.o.db
      .select({ name: tenants.name })
      .from(tenants)
      .where(eq(tenants.id, tenantId));
    if (!row) throw new NotFoundError(`no tenant ${tenantId}`);
    return row.name;
  }

  private async tenantCreatedAt(tenantId: string): Promise<number> {
    const [row] = await this.o.db
      .select({ createdAt: tenants.createdAt })
      .from(tenants)
      .where(eq(tenants.id, tenantId));
    if (!row) throw new NotFoundError(`no tenant ${tenantId}`);
    return row.createdAt;
  }

  private async firstUsageMonth(tenantId: string): Promise<string | undefined> {
    const groups = await this.o.db.query.usageIntervals.findFirst({
      where: (t, { eq: equals }) => equals(t.tenantId, tenantId),
      orderBy: (t, { asc: ascending }) => [ascending(t.startMs)],
      columns: { startMs: true },
    });
    return groups ? monthOf(groups.startMs) : undefined;
  }
}

function sum(lines: readonly InvoiceLine[]): number {
  return lines.reduce((total, l) => total + l.amountMicroUsd, 0);
}
