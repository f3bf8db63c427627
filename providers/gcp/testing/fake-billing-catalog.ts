/**
 * The Cloud Billing Catalog API's services.skus.list for the fake Compute Engine server (`fake-compute.ts` routes
 * `GET /v1/services/{service}/skus` here): Compute Engine's SKUs as the REST API writes them, `skus` and
 * `nextPageToken` (empty on the last page), prices as google.type.Money (`units` a string, `nanos`).
 * https://cloud.google.com/billing/docs/reference/rest/v1/services.skus/list
 * https://cloud.google.com/billing/docs/reference/rest/v1/services.skus#Sku
 */

export const COMPUTE_ENGINE_SERVICE_ID = '6F81-5844-456A';

/** One SKU as a test states it; `usd` is the price per usage unit, a decimal with up to 9 places. */
export interface FakeSku {
  readonly description: string;
  /** `GPU`, `CPU`, `RAM`, `N1Standard`, … */
  readonly resourceGroup: string;
  readonly usageType: 'OnDemand' | 'Preemptible' | 'Commit1Yr' | 'Commit3Yr';
  readonly regions: readonly string[];
  readonly usd: string;
  /** `h` for cores and GPUs, `GiBy.h` for memory. */
  readonly unit: 'h' | 'GiBy.h';
}

export class FakeBillingCatalog {
  private skus: FakeSku[];

  constructor(
    skus: readonly FakeSku[],
    private readonly pageSize: number,
  ) {
    this.skus = [...skus];
  }

  /** Replaces the SKU with the same description and usage type (or adds it): a price change. */
  put(sku: FakeSku): void {
    const at = this.skus.findIndex((s) => s.description === sku.description && s.usageType === sku.usageType);
    if (at < 0) this.skus.push(sku);
    else this.skus[at] = sku;
  }

  /** One page of the service's SKUs; undefined for a service the catalog does not know. */
  list(service: string, query: URLSearchParams): unknown {
    if (service !== COMPUTE_ENGINE_SERVICE_ID) return undefined;
    const asked = Number(query.get('pageSize') ?? 5_000);
    const size = Math.min(this.pageSize, asked > 0 ? asked : 5_000);
    const start = Number(query.get('pageToken') || 0);
    const page = this.skus.slice(start, start + size);
    const next = start + size < this.skus.length ? String(start + size) : '';
    return { skus: page.map((s, i) => skuJson(s, start + i)), nextPageToken: next };
  }
}

function skuJson(s: FakeSku, index: number): unknown {
  const skuId = `FAKE-${String(index).padStart(4, '0')}-${s.usageType.slice(0, 4).toUpperCase()}`;
  const [units = '0', fraction = ''] = s.usd.split('.');
  return {
    name: `services/${COMPUTE_ENGINE_SERVICE_ID}/skus/${skuId}`,
    skuId,
    description: s.description,
    category: {
      serviceDisplayName: 'Compute Engine',
      resourceFamily: 'Compute',
      resourceGroup: s.resourceGroup,
      usageType: s.usageType,
    },
    serviceRegions: [...s.regions],
    pricingInfo: [
      {
        summary: '',
        pricingExpression: {
          usageUnit: s.unit,
          displayQuantity: 1,
          tieredRates: [
            {
              startUsageAmount: 0,
              unitPrice: { currencyCode: 'USD', units, nanos: Number(fraction.padEnd(9, '0')) },
            },
          ],
          usageUnitDescription: s.unit === 'h' ? 'hour' : 'gibibyte hour',
          baseUnit: s.unit === 'h' ? 's' : 'By.s',
          baseUnitDescription: s.unit === 'h' ? 'second' : 'byte second',
          baseUnitConversionFactor: s.unit === 'h' ? 3600 : 3865470566400,
        },
        currencyConversionRate: 1,
        effectiveTime: '2025-01-01T08:00:00.000Z',
      },
    ],
    serviceProviderName: 'Google',
    geoTaxonomy: { type: s.regions.length > 1 ? 'MULTI_REGIONAL' : 'REGIONAL', regions: [...s.regions] },
  };
}
