/**
 * Durable, idempotent ingestion of usage events. A batch becomes one multi-row upsert in one transaction, where
 * each row's checkpoint is the greatest time seen and its end the least stop seen (PostgreSQL's GREATEST and LEAST
 * skip NULLs). Both are commutative and idempotent, so a duplicated, replayed or reordered event changes nothing.
 */
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { usageIntervals } from './schema.ts';
import type { UsageEvent } from './usage-event.ts';

// Any drizzle PostgreSQL database (PGlite or postgres.js) whose schema includes the meter's table.
// biome-ignore lint/suspicious/noExplicitAny: the store only needs the query builder, whatever the schema.
export type MeterDatabase = PgDatabase<PgQueryResultHKT, any>;

/** Rows per statement: 13 parameters a row stays well under PostgreSQL's 65,535 parameters. */
const ROWS_PER_STATEMENT = 2000;

export class UsageStore {
  constructor(private readonly db: MeterDatabase) {}

  /** Applies a batch of events; returns how many distinct events it held. */
  async ingest(events: readonly UsageEvent[]): Promise<number> {
    const seen = new Set<string>();
    const rows = new Map<string, typeof usageIntervals.$inferInsert>();
    for (const e of events) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      const row = rows.get(e.intervalId);
      const end = e.type === 'stop' ? e.atMs : null;
      if (row) {
        row.startMs = Math.min(row.startMs, e.startMs);
        row.checkpointMs = Math.max(row.checkpointMs ?? e.atMs, e.atMs);
        if (end !== null && (row.endMs == null || end < row.endMs)) {
          row.endMs = end;
          row.endedBy = 'stopped';
        }
        continue;
      }
      rows.set(e.intervalId, {
        id: e.intervalId,
        tenantId: e.tenantId,
        kind: e.kind,
        subject: e.subject,
        gpu: e.gpu,
        gpus: e.gpus,
        cores: e.cores ?? 0,
        memoryMib: e.memoryMib ?? 0,
        vendor: e.vendor,
        region: e.region,
        capacityType: e.capacityType,
        startMs: e.startMs,
        checkpointMs: e.atMs,
        endMs: end,
        endedBy: end === null ? null : 'stopped',
      });
    }
    if (rows.size === 0) return 0;
    const all = [...rows.values()];
    await this.db.transaction(async (tx) => {
      for (let i = 0; i < all.length; i += ROWS_PER_STATEMENT)
        await tx
          .insert(usageIntervals)
          .values(all.slice(i, i + ROWS_PER_STATEMENT))
          .onConflictDoUpdate({
            target: usageIntervals.id,
            set: {
              startMs: sql`least(${usageIntervals.startMs}, excluded.start_ms)`,
              checkpointMs: sql`greatest(${usageIntervals.checkpointMs}, excluded.checkpoint_ms)`,
              endMs: sql`least(${usageIntervals.endMs}, excluded.end_ms)`,
              endedBy: sql`case when ${usageIntervals.endMs} is null or excluded.end_ms < ${usageIntervals.endMs}
                then coalesce(excluded.ended_by, ${usageIntervals.endedBy}) else ${usageIntervals.endedBy} end`,
            },
          });
    });
    return seen.size;
  }

  /**
   * Closes every interval left open (the process that metered it died) at its last checkpoint: time the meter did
   * not observe is never billed. Returns the ids closed.
   */
  async closeOpenAtCheckpoint(): Promise<string[]> {
    const closed = await this.db
      .update(usageIntervals)
      .set({ endMs: sql`${usageIntervals.checkpointMs}`, endedBy: 'recovered' })
      .where(sql`${usageIntervals.endMs} is null`)
      .returning({ id: usageIntervals.id });
    return closed.map((r) => r.id);
  }
}
