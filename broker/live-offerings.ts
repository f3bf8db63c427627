/**
 * The offerings the providers sell now, with their live prices and availability, and the quotas they publish: one
 * owner that the loop refreshes and plans with, and that leases (what a request may be served from) and invoices
 * (fleet cost) read. A provider that does not answer keeps its last list.
 */
import type { Logger } from 'pino';
import type { OfferingQuote, Provider } from '../providers/provider.ts';
import type { QuotaBook } from './quota-book.ts';

export class LiveOfferings {
  private quotes: OfferingQuote[] = [];
  private byId = new Map<string, OfferingQuote>();

  constructor(
    private readonly o: {
      readonly providers: ReadonlyMap<string, Provider>;
      readonly quotas: QuotaBook;
      readonly logger: Logger;
    },
  ) {}

  /** Every offering as last read (empty before the first `refresh`). */
  all(): readonly OfferingQuote[] {
    return this.quotes;
  }

  get(offeringId: string): OfferingQuote | undefined {
    return this.byId.get(offeringId);
  }

  /** The region group of an offering, when it is known. */
  regionGroupOf(offeringId: string): string | undefined {
    return this.byId.get(offeringId)?.regionGroup;
  }

  /** GPU types on sale. */
  gpuTypes(): string[] {
    return [...new Set(this.quotes.map((q) => q.gpu))];
  }

  /** Reads every provider's offerings (and quotas, where it publishes them). */
  async refresh(): Promise<void> {
    const providers = [...this.o.providers.values()];
    await Promise.all(
      providers.map(async (p) => {
        if (!p.quotas) return;
        try {
          this.o.quotas.publish(p.vendor, await p.quotas());
        } catch (error) {
          this.o.logger.warn({ vendor: p.vendor, err: error }, 'quotas unavailable; keeping the last list');
        }
      }),
    );
    const lists = await Promise.all(
      providers.map(async (p) => {
        try {
          return await p.offerings();
        } catch (error) {
          this.o.logger.warn(
            { vendor: p.vendor, err: error },
            'offerings unavailable; keeping the last list',
          );
          return this.quotes.filter((q) => q.vendor === p.vendor);
        }
      }),
    );
    const quotes = lists.flat();
    // The same answer as before (the simulated clouds hand out one frozen list while nothing changed): keep the index.
    if (quotes.length !== this.quotes.length || quotes.some((q, i) => q !== this.quotes[i]))
      this.byId = new Map(quotes.map((q) => [q.id, q]));
    this.quotes = quotes;
  }
}
