/**
 * A wire-level fake of the Azure Retail Prices API for the Azure adapter's tests: `GET /api/retail/prices` on
 * 127.0.0.1 over plain HTTP (the real API is public and unauthenticated, so no token and no TLS are involved), with
 * an OData `$filter` of `field eq 'value'` clauses joined by `and` (values case-sensitive, as from API version
 * 2023-01-01-preview on), pages of `pageSize` items and an absolute `NextPageLink` (null on the last page).
 * https://learn.microsoft.com/en-us/rest/api/cost-management/retail-prices/azure-retail-prices
 *
 * `vmPriceItems` writes the items the API lists for one VM size in one region: Linux and Windows pay-as-you-go,
 * Spot and Low Priority of each, and a one-year reservation, so that an adapter that takes the wrong item shows.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A price item, with the fields the API returns (https://learn.microsoft.com/en-us/rest/api/cost-management/retail-prices/azure-retail-prices#api-response-examples). */
export interface FakeRetailItem {
  readonly armRegionName: string;
  readonly armSkuName: string;
  readonly skuName: string;
  readonly meterName: string;
  readonly productName: string;
  readonly retailPrice: number;
  readonly type: 'Consumption' | 'DevTestConsumption' | 'Reservation';
  readonly unitOfMeasure: string;
  readonly serviceName: string;
  readonly reservationTerm?: string;
}

/** One request the fake answered. */
export interface FakeRetailRequest {
  readonly filter: string;
  readonly skip: number;
  readonly status: number;
}

export interface FakeRetailPricesOptions {
  readonly items?: readonly FakeRetailItem[];
  /** Items per page (the real API: 1,000). */
  readonly pageSize?: number;
}

/** The filter fields the API documents. */
const FIELDS = new Set([
  'armRegionName',
  'location',
  'meterId',
  'meterName',
  'productId',
  'skuId',
  'productName',
  'skuName',
  'serviceName',
  'serviceId',
  'serviceFamily',
  'priceType',
  'armSkuName',
]);

/**
 * The items the API lists for a VM size in a region: Linux at `usd` and, with `spotUsd`, Linux Spot; Windows and
 * Low Priority at other prices, and a reservation.
 */
export function vmPriceItems(
  region: string,
  armSkuName: string,
  usd: number,
  spotUsd?: number,
): FakeRetailItem[] {
  // "Standard_NC24ads_A100_v4" is listed as sku "NC24ads A100 v4" of a product "Virtual Machines … Series".
  const sku = armSkuName.replace(/^Standard_/, '').replace(/_/g, ' ');
  const series = `Virtual Machines ${sku} Series`;
  const item = (skuName: string, productName: string, retailPrice: number): FakeRetailItem => ({
    armRegionName: region,
    armSkuName,
    skuName,
    meterName: skuName,
    productName,
    retailPrice,
    type: 'Consumption',
    unitOfMeasure: '1 Hour',
    serviceName: 'Virtual Machines',
  });
  return [
    item(sku, series, usd),
    item(sku, `${series} Windows`, usd * 1.4),
    item(`${sku} Low Priority`, series, usd * 0.2),
    item(`${sku} Low Priority`, `${series} Windows`, usd * 0.3),
    ...(spotUsd === undefined
      ? []
      : [item(`${sku} Spot`, series, spotUsd), item(`${sku} Spot`, `${series} Windows`, spotUsd * 1.5)]),
    { ...item(sku, series, usd * 5_000), type: 'Reservation', reservationTerm: '1 Year' },
  ];
}

export class FakeRetailPrices {
  readonly requests: FakeRetailRequest[] = [];
  private items: FakeRetailItem[];
  private readonly pageSize: number;
  private failures: { status: number; times: number }[] = [];
  private server: Server | undefined;

  private constructor(options: FakeRetailPricesOptions) {
    this.items = [...(options.items ?? [])];
    this.pageSize = options.pageSize ?? 1_000;
  }

  static async start(options: FakeRetailPricesOptions = {}): Promise<FakeRetailPrices> {
    const fake = new FakeRetailPrices(options);
    fake.server = createServer((req, res) => fake.handle(req, res));
    await new Promise<void>((resolve) => fake.server?.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** The origin to give the adapter (`pricesEndpoint`). */
  get url(): string {
    const address = this.server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error('the fake Retail Prices API is not listening');
    return `http://127.0.0.1:${address.port}`;
  }

  /** Replaces the items of the same region, size, sku, product and type (a new price), or adds them. */
  put(...items: FakeRetailItem[]): void {
    const same = (a: FakeRetailItem, b: FakeRetailItem) =>
      a.armRegionName === b.armRegionName &&
      a.armSkuName === b.armSkuName &&
      a.skuName === b.skuName &&
      a.productName === b.productName &&
      a.type === b.type;
    this.items = [...this.items.filter((i) => !items.some((n) => same(i, n))), ...items];
  }

  /** The next `times` requests are answered with this HTTP status (and an error body). */
  failNext(status: number, times = 1): void {
    this.failures.push({ status, times });
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const filter = url.searchParams.get('$filter') ?? '';
    const skip = Number(url.searchParams.get('$skip') ?? 0);
    const { status, body } = this.answer(req.method ?? 'GET', url, filter, skip);
    this.requests.push({ filter, skip, status });
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'x-ms-request-id': randomUUID(),
    });
    res.end(JSON.stringify(body));
  }

  private answer(method: string, url: URL, filter: string, skip: number): { status: number; body: unknown } {
    const error = (status: number, message: string) => ({
      status,
      body: { Error: { Code: status === 429 ? 'TooManyRequests' : 'BadRequest', Message: message } },
    });
    if (method !== 'GET' || url.pathname !== '/api/retail/prices') return error(404, 'Not found');
    const failure = this.failures.find((f) => f.times > 0);
    if (failure) {
      failure.times--;
      return error(failure.status, `injected HTTP ${failure.status}`);
    }
    const wanted: [string, string][] = [];
    for (const clause of filter === '' ? [] : filter.split(' and ')) {
      const match = /^\s*(\w+) eq '((?:[^']|'')*)'\s*$/.exec(clause);
      if (!match || !FIELDS.has(match[1] ?? '')) return error(400, `Invalid OData filter: ${clause}`);
      wanted.push([match[1] ?? '', (match[2] ?? '').replace(/''/g, "'")]);
    }
    if (!Number.isSafeInteger(skip) || skip < 0) return error(400, 'Invalid $skip');
    const matches = this.items.filter((item) =>
      wanted.every(([field, value]) => fieldOf(item, field) === value),
    );
    const page = matches.slice(skip, skip + this.pageSize);
    let next: string | null = null;
    if (skip + this.pageSize < matches.length) {
      const link = new URL('/api/retail/prices', this.url);
      for (const [key, value] of url.searchParams) if (key !== '$skip') link.searchParams.set(key, value);
      link.searchParams.set('$skip', String(skip + this.pageSize));
      next = link.toString();
    }
    return {
      status: 200,
      body: {
        BillingCurrency: 'USD',
        CustomerEntityId: 'Default',
        CustomerEntityType: 'Retail',
        Items: page.map((item) => itemJson(item)),
        NextPageLink: next,
        Count: page.length,
      },
    };
  }
}

function fieldOf(item: FakeRetailItem, field: string): string | undefined {
  if (field === 'priceType') return item.type;
  if (field === 'serviceFamily') return 'Compute';
  const value = (item as unknown as Record<string, unknown>)[field];
  return typeof value === 'string' ? value : undefined;
}

function itemJson(item: FakeRetailItem): unknown {
  return {
    currencyCode: 'USD',
    tierMinimumUnits: 0,
    ...(item.reservationTerm ? { reservationTerm: item.reservationTerm } : {}),
    retailPrice: item.retailPrice,
    unitPrice: item.retailPrice,
    armRegionName: item.armRegionName,
    location: item.armRegionName,
    effectiveStartDate: '2025-01-01T00:00:00Z',
    meterId: randomUUID(),
    meterName: item.meterName,
    productId: 'DZH318Z0BQ4L',
    skuId: 'DZH318Z0BQ4L/00GT',
    productName: item.productName,
    skuName: item.skuName,
    serviceName: item.serviceName,
    serviceId: 'DZH313Z7MMC8',
    serviceFamily: 'Compute',
    unitOfMeasure: item.unitOfMeasure,
    type: item.type,
    isPrimaryMeterRegion: true,
    armSkuName: item.armSkuName,
  };
}
