/**
 * Tokens: a known token's principal is kept for PRINCIPAL_CACHE_MS (no database read per request), a token revoked in
 * the database stops working once that has passed, and unknown tokens are never kept.
 */
import { eq } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import { IdGenerator } from '../lib/ids.ts';
import { Random } from '../lib/random.ts';
import { emptyDatabase } from '../test/empty-database.ts';
import type { OpenedDatabase } from './db/open-database.ts';
import { apiTokens } from './db/schema.ts';
import { bearerToken, hashToken, PRINCIPAL_CACHE_MS, TokenStore } from './tokens.ts';

let opened: OpenedDatabase | undefined;
afterEach(async () => {
  await opened?.close();
  opened = undefined;
});

async function store() {
  opened = await emptyDatabase();
  const clock = new VirtualClock(Date.UTC(2026, 11, 7));
  return {
    clock,
    tokens: new TokenStore(opened.db, clock, new IdGenerator(clock, new Random(1))),
    db: opened.db,
  };
}

describe('TokenStore.authenticate', () => {
  it('names the principal of a token, and nothing for an unknown one', async () => {
    const { tokens } = await store();
    const { token, tenantId } = await tokens.create('alice', 'tenant');
    expect(await tokens.authenticate(token)).toEqual({ tenantId, tenantName: 'alice', role: 'tenant' });
    expect(await tokens.authenticate(`${token}x`)).toBeUndefined();
  });

  it('keeps a principal for PRINCIPAL_CACHE_MS: a token revoked in the database stops working after that', async () => {
    const { tokens, clock, db } = await store();
    const { token } = await tokens.create('alice', 'tenant');
    expect(await tokens.authenticate(token)).toBeDefined();
    await db
      .update(apiTokens)
      .set({ revokedAt: clock.now() })
      .where(eq(apiTokens.tokenHash, hashToken(token)));
    // Still trusted from memory (no database read) ...
    expect(await tokens.authenticate(token)).toBeDefined();
    await clock.advanceBy(PRINCIPAL_CACHE_MS - 1);
    expect(await tokens.authenticate(token)).toBeDefined();
    // ... and asked again once the time has passed.
    await clock.advanceBy(1);
    expect(await tokens.authenticate(token)).toBeUndefined();
    expect(await tokens.authenticate(token)).toBeUndefined();
  });

  it('does not keep unknown tokens: one created after a miss works at once', async () => {
    const { tokens, db, clock } = await store();
    const { token } = await tokens.create('bob', 'operator');
    await db
      .update(apiTokens)
      .set({ revokedAt: clock.now() })
      .where(eq(apiTokens.tokenHash, hashToken(token)));
    expect(await tokens.authenticate(token)).toBeUndefined();
    await db
      .update(apiTokens)
      .set({ revokedAt: null })
      .where(eq(apiTokens.tokenHash, hashToken(token)));
    expect(await tokens.authenticate(token)).toMatchObject({ tenantName: 'bob', role: 'operator' });
  });
});

describe('bearerToken', () => {
  it('takes the token of a Bearer header in any case, and nothing else', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer  abc')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});
