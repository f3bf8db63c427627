/**
 * The audit log: token creations (API and join tokens) and tenant-limit changes, with who, when and what. Each
 * record is written by the caller's transaction where the change has one, so a change is never without its record.
 */
import { desc } from 'drizzle-orm';
import type { Clock } from '../lib/clock.ts';
import type { IdGenerator } from '../lib/ids.ts';
import type { Database } from './db/open-database.ts';
import { auditEvents } from './db/schema.ts';

export type AuditAction = 'token.create' | 'join-token.create' | 'tenant.limits';

export interface AuditEvent {
  readonly id: string;
  readonly atMs: number;
  readonly actor: string;
  readonly action: AuditAction;
  readonly subject: string;
  readonly detail: Readonly<Record<string, unknown>>;
}

/** A database or a transaction of one (both insert alike). */
type Writer = Pick<Database, 'insert'>;

export class AuditLog {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly ids: IdGenerator,
  ) {}

  async record(
    writer: Writer,
    event: { actor: string; action: AuditAction; subject: string; detail: Record<string, unknown> },
  ): Promise<void> {
    await writer.insert(auditEvents).values({ id: this.ids.next('audit'), at: this.clock.now(), ...event });
  }

  /** The latest events, newest first. */
  async latest(limit: number): Promise<AuditEvent[]> {
    const rows = await this.db
      .select()
      .from(auditEvents)
      .orderBy(desc(auditEvents.at), desc(auditEvents.id))
      .limit(limit);
    return rows.map((r) => ({
      id: r.id,
      atMs: r.at,
      actor: r.actor,
      action: r.action as AuditAction,
      subject: r.subject,
      detail: r.detail as Record<string, unknown>,
    }));
  }
}
