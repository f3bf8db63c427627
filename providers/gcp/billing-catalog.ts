/**
 * Compute Engine's public SKUs from the Cloud Billing Catalog API, through the official client
 * (`@google-cloud/billing`, CloudCatalogClient, REST transport like the Compute client): services.skus.list for
 * service 6F81-5844-456A in USD, every page (`nextPageToken`), a throttled page retried with backoff on the Clock.
 * Without a time range the API answers with the latest prices (at most 12 hours old).
 * https://cloud.google.com/billing/docs/reference/rest/v1/services.skus/list
 */
import { CloudCatalogClient, type protos } from '@google-cloud/billing';
import { type BackoffPolicy, withBackoff } from '../../lib/backoff.ts';
import type { Clock } from '../../lib/clock.ts';
import type { Random } from '../../lib/random.ts';
import { faultFromError } from './gce-fault.ts';
import { COMPUTE_ENGINE_SERVICE } from './sku-pricing.ts';

type ISku = protos.google.cloud.billing.v1.ISku;

/** The client's options (credentials, endpoint, transport), as its constructor takes them. */
export type BillingClientOptions = NonNullable<ConstructorParameters<typeof CloudCatalogClient>[0]>;

/** The most SKUs the API gives per page (its default and maximum). */
const PAGE_SIZE = 5_000;

export class BillingCatalog {
  private readonly client: CloudCatalogClient;

  constructor(
    options: BillingClientOptions,
    private readonly clock: Clock,
    private readonly backoff: BackoffPolicy,
    private readonly random: Random,
  ) {
    this.client = new CloudCatalogClient({ ...options });
  }

  /** Every Compute Engine SKU with its current USD price; throws when a page cannot be read. */
  async computeSkus(): Promise<ISku[]> {
    const skus: ISku[] = [];
    let pageToken = '';
    do {
      const [page, , response] = await withBackoff(
        {
          clock: this.clock,
          policy: this.backoff,
          jitter: this.random,
          retryable: (error) => faultFromError(error).kind === 'throttled',
        },
        () =>
          this.client.listSkus(
            { parent: COMPUTE_ENGINE_SERVICE, currencyCode: 'USD', pageSize: PAGE_SIZE, pageToken },
            // One page per call (we follow the token), and no retries but ours.
            { autoPaginate: false, retry: null },
          ),
      );
      skus.push(...page);
      const next = response?.nextPageToken ?? '';
      pageToken = next === pageToken ? '' : next;
    } while (pageToken);
    return skus;
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }
}
