/**
 * Who may be an agent. Three kinds of bearer token open an agent connection:
 * - a join token (`gpj_…`), which can register agents and do nothing else; optional expiry; when `boundTo` a
 *   launch (its idempotency key), it joins each instance of that launch once and nothing else;
 * - an operator token (joins like an unbound join token);
 * - an agent credential (`gpa_…`), handed to each agent when it joins and kept by it for every later connection.
 * Tokens are secrets from the OS's generator; only their SHA-256 is stored. Revoking an agent refuses its
 * credential from then on (the hub also closes its connection).
 */
import { randomBytes } from 'node:crypto';
import { and, desc, eq, inArray, isNull } from 'drizzle-orm';
import type { Clock } from '../../lib/clock.ts';
import { NotFoundError, ValidationError } from '../../lib/errors.ts';
import type { IdGenerator } from '../../lib/ids.ts';
import type { Database } from '../db/open-database.ts';
import { agents, joinTokens } from '../db/schema.ts';
import { hashToken, type TokenStore } from '../tokens.ts';

export type AgentAuth =
  | { readonly kind: 'join'; readonly tokenId: string; readonly boundTo: string | null }
  | { readonly kind: 'operator'; readonly tenantId: string }
  | { readonly kind: 'agent'; readonly agentId: string; readonly instanceId: string };

export interface AgentRecord {
  readonly id: string;
  readonly instanceId: string;
  readonly hostname: string;
  readonly labels: Record<string, string>;
  readonly joinedWith: string;
  readonly createdAt: number;
  readonly revokedAt: number | null;
}

/** Longest a join token may live. */
export const MAX_JOIN_TTL_MS = 365 * 24 * 3_600_000;

export class AgentRegistry {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly ids: IdGenerator,
    private readonly tokens: TokenStore,
  ) {}

  /** A new join token (shown once). `ttlMs` bounds its life; `boundTo` ties it to one launch. */
  async createJoinToken(options: {
    createdBy: string;
    ttlMs?: number;
    boundTo?: string;
  }): Promise<{ token: string; id: string; expiresAt: number | null }> {
    const { ttlMs } = options;
    if (ttlMs !== undefined && (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_JOIN_TTL_MS))
      throw new ValidationError('ttl', 'must be a positive duration of at most 365 days');
    const token = `gpj_${randomBytes(32).toString('base64url')}`;
    const id = this.ids.next('join');
    const expiresAt = ttlMs !== undefined ? this.clock.now() + ttlMs : null;
    await this.db.insert(joinTokens).values({
      id,
      tokenHash: hashToken(token),
      boundTo: options.boundTo ?? null,
      expiresAt,
      createdAt: this.clock.now(),
      createdBy: options.createdBy,
    });
    return { token, id, expiresAt };
  }

  async revokeJoinToken(id: string): Promise<void> {
    await this.db.update(joinTokens).set({ revokedAt: this.clock.now() }).where(eq(joinTokens.id, id));
  }

  /** What `token` may do as an agent, or undefined (unknown, revoked, expired, or a tenant's token). */
  async authenticate(token: string): Promise<AgentAuth | undefined> {
    const hash = hashToken(token);
    if (token.startsWith('gpa_')) {
      const [row] = await this.db
        .select()
        .from(agents)
        .where(and(eq(agents.credentialHash, hash), isNull(agents.revokedAt)));
      return row ? { kind: 'agent', agentId: row.id, instanceId: row.instanceId } : undefined;
    }
    if (token.startsWith('gpj_')) {
      const [row] = await this.db
        .select()
        .from(joinTokens)
        .where(and(eq(joinTokens.tokenHash, hash), isNull(joinTokens.revokedAt)));
      if (!row || (row.expiresAt !== null && row.expiresAt <= this.clock.now())) return undefined;
      return { kind: 'join', tokenId: row.id, boundTo: row.boundTo };
    }
    const principal = await this.tokens.authenticate(token);
    return principal?.role === 'operator' ? { kind: 'operator', tenantId: principal.tenantId } : undefined;
  }

  /** Whether a join token bound to a launch already joined this instance (it joins each one once). */
  async alreadyJoined(tokenId: string, instanceId: string): Promise<boolean> {
    const rows = await this.db
      .select({ id: agents.id })
      .from(agents)
      .where(and(eq(agents.joinedWith, `join:${tokenId}`), eq(agents.instanceId, instanceId)));
    return rows.length > 0;
  }

  /** Which of these instances an agent ever joined (revoked or not). */
  async joinedInstances(instanceIds: readonly string[]): Promise<Set<string>> {
    if (instanceIds.length === 0) return new Set();
    const rows = await this.db
      .selectDistinct({ instanceId: agents.instanceId })
      .from(agents)
      .where(inArray(agents.instanceId, [...instanceIds]));
    return new Set(rows.map((row) => row.instanceId));
  }

  /** Registers a joining agent; returns its id and credential (shown once, to the agent). */
  async register(agent: {
    instanceId: string;
    hostname: string;
    labels: Record<string, string>;
    joinedWith: string;
    /** Fixed for a machine of your own, whose instance id is derived from it. */
    id?: string;
  }): Promise<{ agentId: string; credential: string }> {
    const credential = `gpa_${randomBytes(32).toString('base64url')}`;
    const agentId = agent.id ?? this.ids.next('agent');
    await this.db.insert(agents).values({
      id: agentId,
      credentialHash: hashToken(credential),
      instanceId: agent.instanceId,
      hostname: agent.hostname,
      labels: agent.labels,
      joinedWith: agent.joinedWith,
      createdAt: this.clock.now(),
    });
    return { agentId, credential };
  }

  newAgentId(): string {
    return this.ids.next('agent');
  }

  async revoke(agentId: string): Promise<AgentRecord> {
    const [row] = await this.db
      .update(agents)
      .set({ revokedAt: this.clock.now() })
      .where(and(eq(agents.id, agentId), isNull(agents.revokedAt)))
      .returning();
    if (row) return toRecord(row);
    const [existing] = await this.db.select().from(agents).where(eq(agents.id, agentId));
    if (!existing) throw new NotFoundError(`no agent ${agentId}`);
    return toRecord(existing);
  }

  async list(): Promise<AgentRecord[]> {
    return (await this.db.select().from(agents).orderBy(desc(agents.createdAt))).map(toRecord);
  }
}

function toRecord(row: typeof agents.$inferSelect): AgentRecord {
  return {
    id: row.id,
    instanceId: row.instanceId,
    hostname: row.hostname,
    labels: row.labels as Record<string, string>,
    joinedWith: row.joinedWith,
    createdAt: row.createdAt,
    revokedAt: row.revokedAt,
  };
}
