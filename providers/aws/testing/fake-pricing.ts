/**
 * The AWS Price List Query API for the fake EC2 server (`fake-ec2.ts` hands it the requests that carry
 * `X-Amz-Target: AWSPriceListService.*`): the JSON 1.1 protocol, a JSON body in, `{ FormatVersion, PriceList,
 * NextToken }` out, where each PriceList entry is one product as a JSON string, as AWS sends it.
 * https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html
 *
 * Each on-demand price set here becomes the product AWS lists for a Linux on-demand instance, with the attributes
 * the real price list carries, next to decoys of the same type and region that a missing filter would let through
 * (Windows, dedicated tenancy, SQL Server pre-installed, a reservation's unused capacity), each priced differently.
 * Filters are TERM_MATCH on product attributes (case-insensitive values, as AWS matches them).
 */

/** A Price List Query API error: the JSON protocol's `__type` and message, with its HTTP status. */
export class PricingError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export interface OnDemandPrice {
  readonly instanceType: string;
  readonly region: string;
  /** Hourly USD as a decimal ("1.006"); the product shows it with 10 decimals as AWS does. */
  readonly usd: string;
}

interface Product {
  readonly sku: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly usd: string;
}

/** What a decoy changes in the Linux on-demand product, and by how much its price differs. */
const DECOYS: ReadonlyArray<{ readonly attributes: Record<string, string>; readonly factor: number }> = [
  { attributes: { operatingSystem: 'Windows', licenseModel: 'No License required' }, factor: 1.5 },
  { attributes: { tenancy: 'Dedicated' }, factor: 1.1 },
  { attributes: { preInstalledSw: 'SQL Std' }, factor: 2 },
  { attributes: { capacitystatus: 'UnusedCapacityReservation' }, factor: 1 },
  { attributes: { capacitystatus: 'AllocatedCapacityReservation' }, factor: 0 },
];

const ON_DEMAND_TERM = 'JRTCKXETXF';
const RATE_CODE = '6YS6EN2CT7';

export class FakePricing {
  /** Linux on-demand price per `instanceType@region`. */
  private readonly prices = new Map<string, string>();

  constructor(
    prices: readonly OnDemandPrice[],
    private readonly pageSize: number,
  ) {
    for (const p of prices) this.set(p.instanceType, p.region, p.usd);
  }

  set(instanceType: string, region: string, usd: string): void {
    this.prices.set(`${instanceType}@${region}`, usd);
  }

  /** Answers one request of the Pricing API's JSON protocol; throws PricingError for a request AWS would refuse. */
  answer(operation: string, body: unknown): unknown {
    if (operation !== 'GetProducts')
      throw new PricingError('UnknownOperationException', `${operation} is not supported by this fake`);
    const request = (body ?? {}) as {
      ServiceCode?: string;
      Filters?: { Type?: string; Field?: string; Value?: string }[];
      FormatVersion?: string;
      NextToken?: string;
      MaxResults?: number;
    };
    if (request.ServiceCode !== 'AmazonEC2')
      throw new PricingError(
        'InvalidParameterException',
        `This fake prices AmazonEC2, not ${request.ServiceCode}`,
      );
    if (request.FormatVersion !== undefined && request.FormatVersion !== 'aws_v1')
      throw new PricingError(
        'InvalidParameterException',
        `Unsupported FormatVersion ${request.FormatVersion}`,
      );
    const filters = request.Filters ?? [];
    for (const f of filters)
      if (f.Type !== 'TERM_MATCH' || !f.Field || f.Value === undefined)
        throw new PricingError('InvalidParameterException', `Unsupported filter ${JSON.stringify(f)}`);
    const matches = this.products().filter((p) =>
      filters.every((f) => p.attributes[f.Field ?? '']?.toLowerCase() === f.Value?.toLowerCase()),
    );
    const start = request.NextToken === undefined ? 0 : Number(request.NextToken);
    if (!Number.isSafeInteger(start) || start < 0 || start > matches.length)
      throw new PricingError('InvalidNextTokenException', 'The NextToken is invalid');
    const size = Math.min(this.pageSize, request.MaxResults ?? 100);
    const page = matches.slice(start, start + size);
    const next = start + size < matches.length ? String(start + size) : undefined;
    return {
      FormatVersion: 'aws_v1',
      PriceList: page.map((p) => JSON.stringify(productJson(p))),
      ...(next ? { NextToken: next } : {}),
    };
  }

  /** Every product: the Linux on-demand one of each price, then its decoys. */
  private products(): Product[] {
    const out: Product[] = [];
    let n = 0;
    for (const [key, usd] of this.prices) {
      const [instanceType = '', region = ''] = key.split('@');
      const linux: Record<string, string> = {
        servicecode: 'AmazonEC2',
        productFamily: 'Compute Instance',
        instanceType,
        regionCode: region,
        locationType: 'AWS Region',
        operatingSystem: 'Linux',
        tenancy: 'Shared',
        preInstalledSw: 'NA',
        capacitystatus: 'Used',
        licenseModel: 'No License required',
        marketoption: 'OnDemand',
        operation: 'RunInstances',
        usagetype: `BoxUsage:${instanceType}`,
      };
      out.push({ sku: skuOf(n++), attributes: linux, usd });
      for (const decoy of DECOYS)
        out.push({
          sku: skuOf(n++),
          attributes: { ...linux, ...decoy.attributes },
          usd: (Number(usd) * decoy.factor).toFixed(6),
        });
    }
    return out;
  }
}

/** "1.006" → "1.0060000000", digit for digit. */
function tenDecimals(usd: string): string {
  const [whole = '0', fraction = ''] = usd.split('.');
  return `${whole}.${fraction.padEnd(10, '0')}`;
}

function skuOf(n: number): string {
  return `FAKESKU${String(n).padStart(9, '0')}`;
}

/** A product as the price list writes it (https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/reading-service-price-list-file-for-services.html). */
function productJson(p: Product): unknown {
  const { productFamily, ...attributes } = p.attributes;
  const term = `${p.sku}.${ON_DEMAND_TERM}`;
  const rate = `${term}.${RATE_CODE}`;
  return {
    product: { productFamily, attributes, sku: p.sku },
    serviceCode: 'AmazonEC2',
    terms: {
      OnDemand: {
        [term]: {
          priceDimensions: {
            [rate]: {
              unit: 'Hrs',
              endRange: 'Inf',
              description: `$${p.usd} per On Demand ${p.attributes.operatingSystem} ${p.attributes.instanceType} Instance Hour`,
              appliesTo: [],
              rateCode: rate,
              beginRange: '0',
              pricePerUnit: { USD: tenDecimals(p.usd) },
            },
          },
          sku: p.sku,
          effectiveDate: '2025-01-01T00:00:00Z',
          offerTermCode: ON_DEMAND_TERM,
          termAttributes: {},
        },
      },
    },
    version: '20250101000000',
    publicationDate: '2025-01-01T00:00:00Z',
  };
}
