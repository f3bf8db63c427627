/**
 * Linux VM prices from the Azure Retail Prices API: public, unauthenticated, no SDK, so plain `fetch`.
 * https://learn.microsoft.com/en-us/rest/api/cost-management/retail-prices/azure-retail-prices
 *
 * One query per region and VM size (`$filter=serviceName eq 'Virtual Machines' and armRegionName eq … and
 * armSkuName eq … and priceType eq 'Consumption'`; values are case-sensitive), every page: the answer's
 * `NextPageLink` is followed on the configured endpoint (its path and query), so that an override keeps every page.
 * Of the items, only Linux pay-as-you-go hours count: not Windows (`productName` "… Windows"), not Cloud Services,
 * not Low Priority; a `skuName` ending in "Spot" prices the spot offering, the others the on-demand one. Where those
 * give more than one price, the offering gets none (and keeps its catalog price).
 */
import { groupBy } from '../../lib/arrays.ts';
import type { Clock } from '../../lib/clock.ts';
import type { Micros } from '../../lib/money.ts';
import type { Offering } from '../catalog/offering.ts';
import { usdPriceMicros } from '../usd-price.ts';

export const RETAIL_PRICES_ENDPOINT = 'https://prices.azure.com';
const API_VERSION = '2023-01-01-preview';
/** Queries in flight at once (the API limits callers by rate). */
const CONCURRENCY = 4;
/** A link that keeps pointing at pages is not followed forever. */
const MAX_PAGES = 100;

/** The fields of a price item the adapter reads. */
interface RetailItem {
  readonly armRegionName?: string;
  readonly armSkuName?: string;
  readonly skuName?: string;
  readonly productName?: string;
  readonly type?: string;
  readonly unitOfMeasure?: string;
  readonly currencyCode?: string;
  readonly retailPrice?: number;
}

export interface RetailPricesOptions {
  /** Origin of the API (default https://prices.azure.com). */
  readonly endpoint: string;
  readonly clock: Clock;
  /** Longest wait for one page. */
  readonly timeoutMs: number;
  /** Ends the read (the adapter closed). */
  readonly signal?: AbortSignal;
}

/** The hourly price of each offering the API prices unambiguously, by offering id; throws when a query fails. */
export async function readRetailPrices(
  offerings: readonly Offering[],
  options: RetailPricesOptions,
): Promise<Map<string, Micros>> {
  const groups = groupBy(offerings, (o) => `${o.region}|${o.instanceType}`);
  const queue = [...groups.values()];
  const prices = new Map<string, Micros>();
  let failed = false;
  const worker = async () => {
    for (let group = queue.shift(); group && !failed; group = queue.shift()) {
      const [first] = group;
      if (!first) continue;
      try {
        const items = await itemsOf(first.region, first.instanceType, options);
        for (const o of group) {
          const found = pricesFor(o, items);
          if (found.size === 1) prices.set(o.id, [...found][0] as Micros);
        }
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
  return prices;
}

/** The distinct Linux hourly prices of the items for an offering's capacity type. */
function pricesFor(o: Offering, items: readonly RetailItem[]): Set<Micros> {
  const found = new Set<Micros>();
  for (const item of items) {
    if (item.armRegionName !== o.region || item.armSkuName?.toLowerCase() !== o.instanceType.toLowerCase())
      continue;
    if (item.type !== 'Consumption' || item.unitOfMeasure !== '1 Hour') continue;
    if ((item.currencyCode ?? 'USD') !== 'USD') continue;
    const product = item.productName ?? '';
    const sku = item.skuName ?? '';
    if (/\bWindows\b/.test(product) || /Cloud Services/.test(product) || /Low Priority/.test(sku)) continue;
    if (/ Spot$/.test(sku) !== (o.capacityType === 'spot')) continue;
    const price = typeof item.retailPrice === 'number' ? usdPriceMicros(item.retailPrice) : undefined;
    if (price !== undefined && price > 0) found.add(price);
  }
  return found;
}

/** Every item of one region's prices for one VM size, over every page. */
async function itemsOf(region: string, size: string, options: RetailPricesOptions): Promise<RetailItem[]> {
  const filter = [
    `serviceName eq 'Virtual Machines'`,
    `armRegionName eq '${odata(region)}'`,
    `armSkuName eq '${odata(size)}'`,
    `priceType eq 'Consumption'`,
  ].join(' and ');
  let path: string | undefined =
    `/api/retail/prices?api-version=${API_VERSION}&$filter=${encodeURIComponent(filter)}`;
  const items: RetailItem[] = [];
  for (let pages = 0; path !== undefined; pages++) {
    if (pages >= MAX_PAGES) throw new Error(`the Retail Prices API gave more than ${MAX_PAGES} pages`);
    const page = await getJson(new URL(path, options.endpoint), options);
    items.push(...page.items);
    path = page.next;
  }
  return items;
}

async function getJson(
  url: URL,
  options: RetailPricesOptions,
): Promise<{ items: RetailItem[]; next: string | undefined }> {
  const { clock, timeoutMs, signal } = options;
  const abort = new AbortController();
  const timer = clock.setTimer(clock.now() + timeoutMs, () =>
    abort.abort(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)),
  );
  const stop = () => abort.abort(signal?.reason);
  if (signal?.aborted) stop();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    const response = await fetch(url, { headers: { accept: 'application/json' }, signal: abort.signal });
    const text = await response.text();
    if (!response.ok)
      throw new Error(`the Retail Prices API answered HTTP ${response.status}: ${text.slice(0, 200)}`);
    const body = JSON.parse(text) as { Items?: unknown; NextPageLink?: unknown };
    const items = Array.isArray(body.Items) ? (body.Items as RetailItem[]) : [];
    const link =
      typeof body.NextPageLink === 'string' && body.NextPageLink ? new URL(body.NextPageLink) : undefined;
    return { items, next: link ? `${link.pathname}${link.search}` : undefined };
  } finally {
    timer.cancel();
    signal?.removeEventListener('abort', stop);
  }
}

/** An OData string literal's content: a quote is doubled. */
function odata(value: string): string {
  return value.replace(/'/g, "''");
}
