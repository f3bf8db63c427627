/**
 * The meter's tables: one usage interval per container run or per lease allocation, and each meter's last
 * checkpoint. Times are integer ms since the epoch. Billing reads these rows; nothing else writes them.
 */
import { sql } from 'drizzle-orm';
import { bigint, index, integer, pgTable, text } from 'drizzle-orm/pg-core';

const ms = (name: string) => bigint(name, { mode: 'number' });

export const usageIntervals = pgTable(
  'usage_intervals',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    kind: text('kind', { enum: ['lease', 'container'] }).notNull(),
    /** The lease id, or `app/function` for a container. */
    subject: text('subject').notNull(),
    gpu: text('gpu').notNull(),
    gpus: integer('gpus').notNull(),
    /** CPU cores and memory the container asked for (0 for leases: whole GPUs only). */
    cores: integer('cores').notNull().default(0),
    memoryMib: integer('memory_mib').notNull().default(0),
    vendor: text('vendor').notNull(),
    region: text('region').notNull(),
    capacityType: text('capacity_type').notNull(),
    /** The meter (one per broker process) that opened it; its checkpoints vouch for the interval while open. */
    meterId: text('meter_id').notNull().default(''),
    startMs: ms('start_ms').notNull(),
    /**
     * The last moment an event of this interval was recorded. While the interval is open, its meter's checkpoint
     * (`meter_checkpoints`) vouches for later moments: see `observedEndMs`.
     */
    checkpointMs: ms('checkpoint_ms').notNull(),
    endMs: ms('end_ms'),
    /** `stopped`: its end was observed; `recovered`: closed at its last checkpoint after a crash. */
    endedBy: text('ended_by', { enum: ['stopped', 'recovered'] }),
  },
  (t) => [
    index('usage_tenant_start').on(t.tenantId, t.startMs),
    index('usage_open').on(t.id).where(sql`${t.endMs} is null`),
  ],
);

/**
 * Each meter's last checkpoint: every interval it had open then was still running at `checkpoint_ms`. One row
 * written per heartbeat, instead of one per open interval.
 */
export const meterCheckpoints = pgTable('meter_checkpoints', {
  meterId: text('meter_id').primaryKey(),
  checkpointMs: ms('checkpoint_ms').notNull(),
});

/**
 * Where an interval ends as far as billing knows: its stop, or, while open, the last moment it was seen running
 * (its own last event or its meter's last checkpoint, whichever is later). An interval a crash left open is
 * closed here. Written with the tables' own names: drizzle leaves columns unqualified in an UPDATE, where the
 * subquery's `meter_id` would then be its own.
 */
export const observedEndMs = sql<number>`coalesce(usage_intervals.end_ms, greatest(usage_intervals.checkpoint_ms,
  (select mc.checkpoint_ms from meter_checkpoints mc where mc.meter_id = usage_intervals.meter_id)))`;
