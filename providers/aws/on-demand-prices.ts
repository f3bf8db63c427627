/**
 * On-demand list prices of EC2 instance types from the AWS Price List Query API (`@aws-sdk/client-pricing`):
 * GetProducts for service AmazonEC2, one instance type and region at a time, narrowed to the plain Linux on-demand
 * instance (shared tenancy, no pre-installed software, capacity status `Used`, i.e. not a reservation's unused
 * capacity). Each product comes as a JSON string whose `terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD` is
 * the hourly price ("1.0060000000").
 * https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html
 * https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-price-list-query-api.html
 */
import { type Filter, GetProductsCommand, type PricingClient } from '@aws-sdk/client-pricing';
import type { Micros } from '../../lib/money.ts';
import type { Offering } from '../catalog/offering.ts';
import { usdPriceMicros } from '../usd-price.ts';

/** The Price List Query API's home region; its us-east-1 endpoint answers for every region's products. */
export const PRICING_REGION = 'us-east-1';
/** GetProducts calls in flight at once. */
const CONCURRENCY = 4;
/** GetProducts' largest page. */
const PAGE_SIZE = 100;

/**
 * The on-demand hourly price of each offering, by offering id; an offering the price list has no single price for
 * is left out (the caller keeps its catalog price). Throws when a call fails.
 */
export async function readOnDemandPrices(
  client: PricingClient,
  offerings: readonly Offering[],
  abortSignal: AbortSignal,
): Promise<Map<string, Micros>> {
  const prices = new Map<string, Micros>();
  const queue = [...offerings];
  let failed = false;
  const worker = async () => {
    for (let o = queue.shift(); o && !failed; o = queue.shift()) {
      try {
        const found = await productPrices(client, o, abortSignal);
        // Several distinct prices mean the filters did not single out one product: no price rather than a guess.
        if (found.size === 1) prices.set(o.id, [...found][0] as Micros);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
  return prices;
}

/** The distinct hourly on-demand prices of the products matching one offering, over every page. */
async function productPrices(
  client: PricingClient,
  o: Offering,
  abortSignal: AbortSignal,
): Promise<Set<Micros>> {
  const found = new Set<Micros>();
  let token: string | undefined;
  do {
    const answer = await client.send(
      new GetProductsCommand({
        ServiceCode: 'AmazonEC2',
        Filters: filtersFor(o),
        FormatVersion: 'aws_v1',
        MaxResults: PAGE_SIZE,
        NextToken: token,
      }),
      { abortSignal },
    );
    // Each entry is a JSON string (the SDK boxes it as a LazyJsonString).
    const list: unknown[] = Array.isArray(answer.PriceList) ? answer.PriceList : [];
    for (const item of list) for (const p of hourlyOnDemandPrices(item)) found.add(p);
    token = answer.NextToken === token ? undefined : answer.NextToken;
  } while (token);
  return found;
}

function filtersFor(o: Offering): Filter[] {
  const term = (Field: string, Value: string): Filter => ({ Type: 'TERM_MATCH', Field, Value });
  return [
    term('instanceType', o.instanceType),
    term('regionCode', o.region),
    term('operatingSystem', 'Linux'),
    term('tenancy', 'Shared'),
    term('preInstalledSw', 'NA'),
    term('capacitystatus', 'Used'),
  ];
}

/** The hourly USD prices of one PriceList entry's on-demand terms (a JSON string, or already parsed). */
export function hourlyOnDemandPrices(item: unknown): Micros[] {
  let product: unknown = item;
  if (typeof item === 'string' || item instanceof String)
    try {
      product = JSON.parse(String(item));
    } catch {
      return [];
    }
  const terms = record(record(product)?.terms)?.OnDemand;
  const out: Micros[] = [];
  for (const term of Object.values(record(terms) ?? {}))
    for (const dimension of Object.values(record(record(term)?.priceDimensions) ?? {})) {
      const d = record(dimension);
      const usd = record(d?.pricePerUnit)?.USD;
      if (d?.unit !== 'Hrs' || typeof usd !== 'string') continue;
      const price = usdPriceMicros(usd);
      if (price !== undefined && price > 0) out.push(price);
    }
  return out;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
}
