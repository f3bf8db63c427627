/**
 * Durable, idempotent ingestion of usage events. A batch becomes one multi-row upsert (one statement), where
 * each row's checkpoint is the greatest time seen and its end the least stop seen (PostgreSQL's GREATEST and LEAST
 * skip NULLs). Both are commutative and idempotent, so a duplicated, replayed or reordered event changes nothing.
 * A meter's checkpoint (all its open intervals ran until then) travels in the same statement, so it is recorded
 * if and only if the batch before it is.
 */
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { meterCheckpoints, observedEndMs, usageIntervals } from './schema.ts';
import type { UsageEvent } from './usage-event.ts';

// Any drizzle PostgreSQL database (PGlite or postgres.js) whose schema includes the meter's table.
// biome-ignore lint/suspicious/noExplicitAny: the store only needs the query builder, whatever the schema.
export type MeterDatabase = PgDatabase<PgQueryResultHKT, any>;

/** A meter's word that every interval it had open at `atMs` was running then. */
export interface MeterCheckpoint {
  readonly meterId: string;
  readonly atMs: number;
}

export class UsageStore {
  constructor(private readonly db: MeterDatabase) {}

  /**
   * Applies a batch of events, then the meter's checkpoint if given (one statement); returns how many distinct
   * events the batch held.
   */
  async ingest(events: readonly UsageEvent[], checkpoint?: MeterCheckpoint): Promise<number> {
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
        meterId: e.meterId ?? '',
        startMs: e.startMs,
        checkpointMs: e.atMs,
        endMs: end,
        endedBy: end === null ? null : 'stopped',
      });
    }
    const recordCheckpoint = checkpoint
      ? sql`insert into meter_checkpoints (meter_id, checkpoint_ms)
          values (${checkpoint.meterId}, ${checkpoint.atMs}::bigint)
          on conflict (meter_id) do update
          set checkpoint_ms = greatest(meter_checkpoints.checkpoint_ms, excluded.checkpoint_ms)`
      : undefined;
    if (rows.size === 0) {
      if (recordCheckpoint) await this.db.execute(recordCheckpoint);
      return 0;
    }
    const all = [...rows.values()];
    // One statement per chunk whatever its size: each column travels as one array parameter (`unnest`), which is
    // much cheaper for the driver than thirteen bound parameters a row.
    const column = <T>(pick: (r: (typeof all)[number]) => T) => sql.param(all.map(pick));
    const upsert = sql`
      insert into usage_intervals (id, tenant_id, kind, subject, gpu, gpus, cores, memory_mib, vendor, region,
        capacity_type, meter_id, start_ms, checkpoint_ms, end_ms, ended_by)
      select * from unnest(
        ${column((r) => r.id)}::text[], ${column((r) => r.tenantId)}::text[], ${column((r) => r.kind)}::text[],
        ${column((r) => r.subject)}::text[], ${column((r) => r.gpu)}::text[], ${column((r) => r.gpus)}::integer[],
        ${column((r) => r.cores ?? 0)}::integer[], ${column((r) => r.memoryMib ?? 0)}::integer[],
        ${column((r) => r.vendor)}::text[], ${column((r) => r.region)}::text[], ${column((r) => r.capacityType)}::text[],
        ${column((r) => r.meterId ?? '')}::text[], ${column((r) => r.startMs)}::bigint[],
        ${column((r) => r.checkpointMs)}::bigint[], ${column((r) => r.endMs ?? null)}::bigint[],
        ${column((r) => r.endedBy ?? null)}::text[])
      on conflict (id) do update set
        start_ms = least(usage_intervals.start_ms, excluded.start_ms),
        checkpoint_ms = greatest(usage_intervals.checkpoint_ms, excluded.checkpoint_ms),
        end_ms = least(usage_intervals.end_ms, excluded.end_ms),
        ended_by = case when usage_intervals.end_ms is null or excluded.end_ms < usage_intervals.end_ms
          then coalesce(excluded.ended_by, usage_intervals.ended_by) else usage_intervals.ended_by end`;
    // PostgreSQL runs both parts of a data-modifying WITH as one statement: the checkpoint lands with its batch.
    await this.db.execute(
      recordCheckpoint ? sql`with batch as (${upsert} returning 1) ${recordCheckpoint}` : upsert,
    );
    return seen.size;
  }

  /**
   * Closes every interval left open (the process that metered it died) at the last moment it was seen running
   * (`observedEndMs`): time the meter did not observe is never billed. Returns the ids closed.
   */
  async closeOpenAtCheckpoint(): Promise<string[]> {
    const closed = await this.db
      .update(usageIntervals)
      .set({ endMs: observedEndMs, endedBy: 'recovered' })
      .where(sql`${usageIntervals.endMs} is null`)
      .returning({ id: usageIntervals.id });
    return closed.map((r) => r.id);
  }

  /**
   * Every interval's span: what a simulation's end check compares with the containers and leases it ran (the
   * rows of `intervals` without the eleven columns it does not read: a ×100 run has tens of thousands).
   */
  async spans(): Promise<
    { id: string; kind: string; gpus: number; startMs: number; endMs: number | null; observedEndMs: number }[]
  > {
    const rows = await this.db
      .select({
        id: usageIntervals.id,
        kind: usageIntervals.kind,
        gpus: usageIntervals.gpus,
        startMs: usageIntervals.startMs,
        endMs: usageIntervals.endMs,
        observedEndMs: observedEndMs,
      })
      .from(usageIntervals);
    return rows.map((r) => ({ ...r, observedEndMs: Number(r.observedEndMs) }));
  }

  /** Every interval with the end billing sees (`observedEndMs`). */
  async intervals(): Promise<(typeof usageIntervals.$inferSelect & { observedEndMs: number })[]> {
    const rows = await this.db
      .select({ row: usageIntervals, observedEndMs: observedEndMs })
      .from(usageIntervals);
    return rows.map(({ row, observedEndMs: end }) => ({ ...row, observedEndMs: Number(end) }));
  }

  /** A meter's last checkpoint, if it made one. */
  async checkpointOf(meterId: string): Promise<number | undefined> {
    const rows = await this.db
      .select({ atMs: meterCheckpoints.checkpointMs })
      .from(meterCheckpoints)
      .where(sql`${meterCheckpoints.meterId} = ${meterId}`);
    return rows[0]?.atMs;
  }
}
