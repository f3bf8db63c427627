import { desc } from 'drizzle-orm';
import type { Clock } from '../lib/clock.ts';
import type { Database } from './db/open-database.ts';
import { policies } from './db/schema.ts';
import { type JsonChange, jsonDiff } from './json-diff.ts';
import { type BrokerPolicy, brokerPolicy } from './policy.ts';

export interface PolicyVersion {
  readonly version: number;
  readonly policy: BrokerPolicy;
  readonly createdAt: number;
  readonly createdBy: string;
  readonly diff: readonly JsonChange[];
}

/** Versioned policies with an audit trail; version 0 is the all-defaults policy, never stored. */
export class PolicyStore {
  private cached: PolicyVersion | undefined;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  async current(): Promise<PolicyVersion> {
    if (this.cached) return this.cached;
    const [row] = await this.db.select().from(policies).orderBy(desc(policies.version)).limit(1);
    this.cached = row
      ? toVersion(row)
      : { version: 0, policy: brokerPolicy(), createdAt: 0, createdBy: 'defaults', diff: [] };
    return this.cached;
  }

  /** Drops the cached version: another replica may have stored newer ones (a new leader calls this). */
  forget(): void {
    this.cached = undefined;
  }

  /** Validates and stores a new version (ValidationError naming the field otherwise; nothing is written). */
  async set(input: unknown, actor: string): Promise<PolicyVersion> {
    const policy = brokerPolicy(input);
    return this.db.transaction(async (tx) => {
      const [latest] = await tx.select().from(policies).orderBy(desc(policies.version)).limit(1);
      const previous = latest ? (latest.policy as BrokerPolicy) : brokerPolicy();
      const row = {
        version: (latest?.version ?? 0) + 1,
        policy,
        createdAt: this.clock.now(),
        createdBy: actor,
        diff: jsonDiff(previous, policy),
      };
      await tx.insert(policies).values(row);
      this.cached = toVersion(row);
      return this.cached;
    });
  }

  async history(): Promise<PolicyVersion[]> {
    const rows = await this.db.select().from(policies).orderBy(desc(policies.version));
    return rows.map(toVersion);
  }
}

function toVersion(row: typeof policies.$inferSelect): PolicyVersion {
  return {
    version: row.version,
    policy: brokerPolicy(row.policy),
    createdAt: row.createdAt,
    createdBy: row.createdBy,
    diff: row.diff as JsonChange[],
  };
}
