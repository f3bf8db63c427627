/**
 * Tenants and their API tokens. A token is `gpb_` + 32 random bytes (base64url), shown once; only its SHA-256 is
 * stored. Tokens are secrets, so they come from the OS's cryptographic generator, not the seeded one.
 *
 * Every request is authenticated, so a known token's principal is kept in memory for a few seconds instead of being
 * looked up in the database each time (that lookup was most of a warm `remote` call's time). What a principal holds
 * never changes for a token (tenant, role); a token revoked in the database (`api_tokens.revoked_at`) stops working
 * within PRINCIPAL_CACHE_MS on every replica. Limits (quota, spend) are not part of it: they are read where they
 * apply.
 */
import { createHash, randomBytes } from 'node:crypto';
import { and, eq, isNull } from 'drizzle-orm';
import type { Clock } from '../lib/clock.ts';
import { ValidationError } from '../lib/errors.ts';
import type { IdGenerator } from '../lib/ids.ts';
import type { Database } from './db/open-database.ts';
import { apiTokens, tenants } from './db/schema.ts';

export type Role = 'tenant' | 'operator';

export interface Principal {
  readonly tenantId: string;
  readonly tenantName: string;
  readonly role: Role;
}

/** How long a token's principal is trusted without asking the database again. */
export const PRINCIPAL_CACHE_MS = 5_000;
/** Most principals kept (unknown tokens are never kept, so guessing cannot fill it). */
const PRINCIPAL_CACHE_SIZE = 10_000;

/** The token of an `Authorization: Bearer <token>` header (the scheme in any case), or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class TokenStore {
  private readonly known = new Map<string, { principal: Principal; checkedAt: number }>();

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly ids: IdGenerator,
  ) {}

  /** Creates the tenant if needed and a token for it; returns the token (the only time it is visible). */
  async create(
    tenantName: string,
    role: Role,
    gpuQuota?: number | null,
    /** Runs in the creation's transaction (the audit record). */
    inTransaction?: (tx: Pick<Database, 'insert'>) => Promise<void>,
  ): Promise<{ token: string; tenantId: string }> {
    if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(tenantName))
      throw new ValidationError('tenant', 'use 1–63 lower-case letters, digits, ".", "_" or "-"');
    if (gpuQuota !== undefined && gpuQuota !== null && (!Number.isSafeInteger(gpuQuota) || gpuQuota < 0))
      throw new ValidationError('gpuQuota', 'must be a non-negative integer');
    const token = `gpb_${randomBytes(32).toString('base64url')}`;
    return this.db.transaction(async (tx) => {
      let [tenant] = await tx.select().from(tenants).where(eq(tenants.name, tenantName));
      if (!tenant) {
        tenant = {
          id: this.ids.next('tenant'),
          name: tenantName,
          gpuQuota: gpuQuota ?? null,
          spendLimitHourMicros: null,
          spendLimitMonthMicros: null,
          onSpendLimit: 'continue',
          createdAt: this.clock.now(),
        };
        await tx.insert(tenants).values(tenant);
      } else if (gpuQuota !== undefined) {
        await tx.update(tenants).set({ gpuQuota }).where(eq(tenants.id, tenant.id));
      }
      await tx.insert(apiTokens).values({
        id: this.ids.next('token'),
        tenantId: tenant.id,
        tokenHash: hashToken(token),
        role,
        createdAt: this.clock.now(),
      });
      await inTransaction?.(tx);
      return { token, tenantId: tenant.id };
    });
  }

  async authenticate(token: string): Promise<Principal | undefined> {
    const hash = hashToken(token);
    const now = this.clock.now();
    const cached = this.known.get(hash);
    if (cached && now - cached.checkedAt < PRINCIPAL_CACHE_MS) return cached.principal;
    const [row] = await this.db
      .select({ tenantId: tenants.id, tenantName: tenants.name, role: apiTokens.role })
      .from(apiTokens)
      .innerJoin(tenants, eq(apiTokens.tenantId, tenants.id))
      .where(and(eq(apiTokens.tokenHash, hash), isNull(apiTokens.revokedAt)));
    this.known.delete(hash);
    if (row) {
      // Oldest first in a Map: past the cap, the one checked longest ago goes.
      if (this.known.size >= PRINCIPAL_CACHE_SIZE)
        this.known.delete(this.known.keys().next().value as string);
      this.known.set(hash, { principal: row, checkedAt: now });
    }
    return row;
  }
}
