/**
 * What a write can change, in one snapshot: the rows behind tenants and their limits, tokens, policy and price book
 * versions, leases (how many, and how many a client released), closed invoices and deployed apps, read straight
 * from the broker's database; the runtime's apps (version, calls made and finished) for every app name the fuzz
 * has addressed; and the bundle files on disk. Things the broker changes on its own (lease and instance states as
 * the loop runs, usage, plans) are left out, so that two snapshots around a refused request must be equal.
 */
import { readdirSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import type { BrokerCore } from '../../broker/broker.ts';

export type Snapshot = Readonly<Record<string, string | number>>;

const QUERY = sql`select
  (select count(*) from tenants)::int as tenants,
  (select md5(coalesce(string_agg(concat_ws('|', id, name, gpu_quota, spend_limit_hour_micros,
     spend_limit_month_micros, on_spend_limit), ',' order by id), '')) from tenants) as "tenantRows",
  (select count(*) from api_tokens)::int as tokens,
  (select count(*) from api_tokens where revoked_at is not null)::int as "revokedTokens",
  (select coalesce(max(version), 0) from policies)::int as "policyVersion",
  (select coalesce(max(version), 0) from price_books)::int as "priceBookVersion",
  (select count(*) from leases)::int as leases,
  (select count(*) from leases where status = 'released' and reason is null)::int as "releasedByClient",
  (select count(*) from invoices)::int as "closedInvoices",
  (select md5(coalesce(string_agg(concat_ws('|', tenant_id, name, bundle_id, functions::text, ephemeral),
     ',' order by tenant_id, name), '')) from apps) as "appRows"`;

export class StateProbe {
  /** `tenantId/app` of every app name requests have addressed. */
  private readonly appKeys = new Set<string>();

  constructor(
    private readonly broker: BrokerCore,
    private readonly bundleRoot: string,
  ) {}

  addressedApp(tenantId: string, app: string): void {
    this.appKeys.add(`${tenantId}/${app}`);
  }

  async snapshot(): Promise<Snapshot> {
    const result = (await this.broker.database.db.execute(QUERY)) as unknown as
      | { rows: Record<string, unknown>[] }
      | Record<string, unknown>[];
    const row = (Array.isArray(result) ? result[0] : result.rows[0]) ?? {};
    const out: Record<string, string | number> = {};
    for (const [key, value] of Object.entries(row))
      out[key] = typeof value === 'number' ? value : String(value);
    const runtime: string[] = [];
    for (const key of [...this.appKeys].sort()) {
      const [tenantId = '', app = ''] = key.split('/');
      const view = this.broker.runtime.getApp(tenantId, app);
      const calls = this.broker.runtime.callCounts(tenantId, app);
      if (view || calls.total > 0)
        runtime.push(
          `${key}:v${view?.version ?? '-'}:${calls.done}/${calls.total}:${view?.functions.join(',') ?? ''}`,
        );
    }
    out.runtimeApps = runtime.join(';');
    out.bundleFiles = countFiles(this.bundleRoot);
    return out;
  }
}

function countFiles(root: string): number {
  try {
    return readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
  } catch {
    return 0;
  }
}

/** The keys whose values differ, `key: before → after`. */
export function differences(before: Snapshot, after: Snapshot): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys]
    .filter((key) => before[key] !== after[key])
    .map((key) => `${key}: ${String(before[key]).slice(0, 80)} → ${String(after[key]).slice(0, 80)}`);
}
