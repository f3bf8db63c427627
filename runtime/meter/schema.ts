/**
 * The meter's table: one usage interval per container run or per lease allocation. Times are integer ms since the
 * epoch. Billing reads these rows; nothing else writes them.
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
    startMs: ms('start_ms').notNull(),
    /** The last moment the meter saw it running; an interval a crash left open is closed here. */
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
