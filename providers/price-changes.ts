/**
 * Price changes as events: an adapter remembers the price it last quoted for each offering, and a quote at another
 * price is published as `price-changed` (the first quote of an offering is not a change). Shared so that spot prices
 * and list prices of every cloud surface the same way.
 */
import type { Micros } from '../lib/money.ts';
import type { OfferingQuote, ProviderEvent } from './provider.ts';

export class PriceChanges {
  private readonly last = new Map<string, Micros>();

  constructor(private readonly vendor: string) {}

  /** Remembers each quote's price; returns one `price-changed` event per quote whose price moved since the last. */
  note(quotes: readonly OfferingQuote[], atMs: number): ProviderEvent[] {
    const events: ProviderEvent[] = [];
    for (const q of quotes) {
      const before = this.last.get(q.id);
      this.last.set(q.id, q.microsPerHour);
      if (before !== undefined && before !== q.microsPerHour)
        events.push({
          kind: 'price-changed',
          atMs,
          vendor: this.vendor,
          offeringId: q.id,
          microsPerHour: q.microsPerHour,
        });
    }
    return events;
  }
}
