/**
 * A cloud adapter's live list prices: read from the cloud's price API, kept for `refreshMs` on the Clock and read
 * again once older (the way spot prices are re-read), one read at a time.
 *
 * The bundled catalog stays the fallback. An offering the price API has no entry for keeps its catalog price; a
 * read that fails keeps the prices known before it (the catalog's until a read succeeds) and is tried again after
 * `retryMs`, so a price API outage never fails `offerings()`. Both go to the debug log, since either means plans
 * run on older prices.
 */
import type { Clock } from '../lib/clock.ts';
import type { Micros } from '../lib/money.ts';
import type { Offering } from './catalog/offering.ts';

/** Where the adapters say how they price (a pino logger fits). */
export interface PriceLog {
  debug(fields: Record<string, unknown>, message: string): void;
}

/** Reads the current price of every offering the cloud prices, by offering id; throws when the price API fails. */
export type ReadPrices = () => Promise<ReadonlyMap<string, Micros>>;

/** How often list prices are read by default: they change rarely, and some price APIs answer in many pages. */
export const DEFAULT_PRICE_REFRESH_MS = 3_600_000;
/** The longest wait before a failed read is tried again. */
const MAX_RETRY_MS = 60_000;

export interface ListPricesOptions {
  readonly vendor: string;
  readonly clock: Clock;
  /** The offerings priced by the price API (for the log of those it has no entry for). */
  readonly offerings: readonly Offering[];
  /** The read; undefined when live prices are off, and then `off` says why. */
  readonly read: ReadPrices | undefined;
  readonly off?: string;
  readonly refreshMs: number;
  readonly log?: PriceLog | undefined;
}

export class ListPrices {
  private live: ReadonlyMap<string, Micros> = new Map();
  private dueAtMs: number;
  private reading: Promise<void> | undefined;

  constructor(private readonly options: ListPricesOptions) {
    this.dueAtMs = options.clock.now();
    if (!options.read)
      options.log?.debug(
        { vendor: options.vendor, reason: options.off },
        'live list prices are off; offerings keep the catalog prices',
      );
  }

  /** Reads the prices again when they are due (callers meanwhile share the read under way). Never throws. */
  refresh(): Promise<void> {
    const read = this.options.read;
    if (this.reading) return this.reading;
    if (!read || this.options.clock.now() < this.dueAtMs) return Promise.resolve();
    this.reading = this.readOnce(read).finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  /** The offering's price from the price API, or its catalog price when the API has none. */
  priceOf(offering: Offering): Micros {
    return this.live.get(offering.id) ?? offering.microsPerHour;
  }

  private async readOnce(read: ReadPrices): Promise<void> {
    const { clock, log, vendor, refreshMs } = this.options;
    try {
      const prices = await read();
      this.live = prices;
      this.dueAtMs = clock.now() + refreshMs;
      const missing = this.options.offerings.filter((o) => !prices.has(o.id)).map((o) => o.id);
      if (missing.length > 0)
        log?.debug(
          { vendor, offerings: missing },
          'the price API has no price for these offerings; they keep the catalog price',
        );
    } catch (error) {
      this.dueAtMs = clock.now() + Math.min(refreshMs, MAX_RETRY_MS);
      log?.debug(
        { vendor, err: error },
        this.live.size > 0
          ? 'reading list prices failed; keeping the prices read before'
          : 'reading list prices failed; offerings keep the catalog prices',
      );
    }
  }
}
