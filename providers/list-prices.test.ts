import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import { type Micros, micros } from '../lib/money.ts';
import { loadCatalog } from './catalog/load-catalog.ts';
import type { Offering } from './catalog/offering.ts';
import { ListPrices, type ReadPrices } from './list-prices.ts';
import { PriceChanges } from './price-changes.ts';
import type { OfferingQuote } from './provider.ts';
import { usdPriceMicros } from './usd-price.ts';

const gcp = loadCatalog().filter((o) => o.vendor === 'gcp');
const a = gcp[0] as Offering;
const b = gcp[1] as Offering;

/** A price API whose answers the test sets, counting reads. */
function priceApi() {
  const api = {
    reads: 0,
    answer: new Map<string, Micros>([[a.id, micros(1_000_000)]]) as Map<string, Micros> | Error,
    read: (async () => {
      api.reads++;
      if (api.answer instanceof Error) throw api.answer;
      return new Map(api.answer);
    }) as ReadPrices,
  };
  return api;
}

function setup(refreshMs = 60_000) {
  const clock = new VirtualClock(1_000);
  const api = priceApi();
  const logs: string[] = [];
  const prices = new ListPrices({
    vendor: 'gcp',
    clock,
    offerings: [a, b],
    read: api.read,
    refreshMs,
    log: { debug: (_fields, message) => logs.push(message) },
  });
  return { clock, api, logs, prices };
}

describe('ListPrices', () => {
  it('uses the price API where it has a price, the catalog where it has none, and says which', async () => {
    const { prices, logs } = setup();
    expect(prices.priceOf(a)).toBe(a.microsPerHour);
    await prices.refresh();
    expect(prices.priceOf(a)).toBe(1_000_000);
    expect(prices.priceOf(b)).toBe(b.microsPerHour);
    expect(logs).toEqual(['the price API has no price for these offerings; they keep the catalog price']);
  });

  it('reads once per refreshMs on the clock, one read at a time', async () => {
    const { clock, api, prices } = setup(60_000);
    await Promise.all([prices.refresh(), prices.refresh()]);
    await prices.refresh();
    expect(api.reads).toBe(1);
    await clock.advanceBy(59_999);
    await prices.refresh();
    expect(api.reads).toBe(1);
    api.answer = new Map([[a.id, micros(900_000)]]);
    await clock.advanceBy(1);
    await prices.refresh();
    expect(api.reads).toBe(2);
    expect(prices.priceOf(a)).toBe(900_000);
  });

  it('keeps the catalog prices when the first read fails, and tries again after a minute', async () => {
    const { clock, api, logs, prices } = setup(3_600_000);
    api.answer = new Error('HTTP 503');
    await prices.refresh();
    expect(prices.priceOf(a)).toBe(a.microsPerHour);
    expect(logs).toEqual(['reading list prices failed; offerings keep the catalog prices']);
    api.answer = new Map([[a.id, micros(1_000_000)]]);
    await clock.advanceBy(59_999);
    await prices.refresh();
    expect(api.reads).toBe(1);
    await clock.advanceBy(1);
    await prices.refresh();
    expect(prices.priceOf(a)).toBe(1_000_000);
  });

  it('keeps the prices read before when a later read fails', async () => {
    const { clock, api, logs, prices } = setup(60_000);
    await prices.refresh();
    api.answer = new Error('timeout');
    await clock.advanceBy(60_000);
    await prices.refresh();
    expect(api.reads).toBe(2);
    expect(prices.priceOf(a)).toBe(1_000_000);
    expect(logs.at(-1)).toBe('reading list prices failed; keeping the prices read before');
  });

  it('reads nothing when live prices are off, and says why once', async () => {
    const clock = new VirtualClock();
    const logs: unknown[] = [];
    const prices = new ListPrices({
      vendor: 'aws',
      clock,
      offerings: [a],
      read: undefined,
      off: 'no endpoint',
      refreshMs: 1,
      log: { debug: (fields, message) => logs.push({ fields, message }) },
    });
    await prices.refresh();
    expect(prices.priceOf(a)).toBe(a.microsPerHour);
    expect(logs).toEqual([
      {
        fields: { vendor: 'aws', reason: 'no endpoint' },
        message: 'live list prices are off; offerings keep the catalog prices',
      },
    ]);
  });
});

describe('PriceChanges', () => {
  const quote = (microsPerHour: number): OfferingQuote => ({
    ...a,
    microsPerHour: micros(microsPerHour),
    available: true,
    availableZones: [],
  });

  it('publishes a change of a quoted price, not a first quote nor the same price again', () => {
    const changes = new PriceChanges('gcp');
    expect(changes.note([quote(5)], 10)).toEqual([]);
    expect(changes.note([quote(5)], 20)).toEqual([]);
    expect(changes.note([quote(7)], 30)).toEqual([
      { kind: 'price-changed', atMs: 30, vendor: 'gcp', offeringId: a.id, microsPerHour: 7 },
    ]);
  });
});

describe('usdPriceMicros', () => {
  it('converts decimal strings exactly and rounds only what is finer than a micro', () => {
    expect(usdPriceMicros('1.0060000000')).toBe(1_006_000);
    expect(usdPriceMicros('0.424600')).toBe(424_600);
    expect(usdPriceMicros('55.1234567891')).toBe(55_123_457);
    expect(usdPriceMicros(0.176346)).toBe(176_346);
    expect(usdPriceMicros(3.673)).toBe(3_673_000);
    expect(usdPriceMicros(1e-7)).toBe(0);
    expect(usdPriceMicros('-1')).toBeUndefined();
    expect(usdPriceMicros('')).toBeUndefined();
    expect(usdPriceMicros('n/a')).toBeUndefined();
  });
});
