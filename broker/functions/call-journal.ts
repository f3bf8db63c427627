/**
 * The call journal: function calls in the database, so that a broker crash loses none.
 *
 * - Accepted: the calls of a request are written (one statement) before the broker answers 202. A call the client
 *   was told about is on disk.
 * - Finished: outcomes are buffered and written together every `flushMs` (default 50 ms; and on close). A crash in
 *   that window leaves the call unfinished on disk: it runs again after the restart (execution is at least once, as
 *   after any container or agent loss); the client sees one result.
 * - Restart (`restore`): unfinished calls are queued again with their ids; finished ones come back with their
 *   outcome, so `GET /v1/calls/{id}` answers as before the crash, until they are older than the runtime keeps calls.
 *
 * Arguments and values travel as structured-clone bytes (v8.serialize), base64.
 */
import { deserialize, serialize } from 'node:v8';
import { eq, gte, isNull, lt, or, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import type { CallError, CallOutcome, CallView } from '../../runtime/runtime.ts';
import type { Database } from '../db/open-database.ts';
import { calls } from '../db/schema.ts';

export interface AcceptedCall {
  readonly callId: string;
  readonly tenantId: string;
  readonly appTenantId: string;
  readonly app: string;
  readonly functionName: string;
  readonly args: readonly unknown[];
  readonly createdAtMs: number;
}

/** A call as the journal has it, for the runtime to take back after a restart. */
export interface JournaledCall extends AcceptedCall {
  readonly attempts: number;
  readonly startedAtMs?: number;
  /** Absent: unfinished. */
  readonly outcome?: CallOutcome;
  readonly finishedAtMs?: number;
}

interface FinishedRow {
  readonly view: CallView;
  readonly outcome: CallOutcome;
}

export interface CallJournalOptions {
  readonly db: Database;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How long finished calls are kept (the runtime's retention). */
  readonly retainMs: number;
  readonly flushMs?: number;
}

export class CallJournal {
  private readonly buffer = new Map<string, FinishedRow>();
  /** Calls on disk and not finished there: only theirs are written (the runtime also runs calls nobody journals). */
  private readonly unfinished = new Set<string>();
  private timer: TimerHandle | undefined;
  private writing: Promise<void> = Promise.resolve();
  /** Inserts of accepted calls in progress. */
  private readonly inserting = new Set<Promise<void>>();
  private lastPruneMs = 0;
  private closed = false;

  constructor(private readonly o: CallJournalOptions) {}

  /** Writes accepted calls; resolves once they are on disk. */
  async accepted(list: readonly AcceptedCall[]): Promise<void> {
    if (list.length === 0) return;
    for (const c of list) this.unfinished.add(c.callId);
    const column = <T>(pick: (c: AcceptedCall) => T) => sql.param(list.map(pick));
    // Outcome writes wait for the inserts in progress (an outcome is never written before its call's row exists);
    // inserts wait for nothing: a submit is not held up by a flush.
    const insert = Promise.resolve(
      this.o.db.execute(sql`
      insert into calls (id, tenant_id, app_tenant_id, app, function_name, args, status, attempts, created_at)
      select t.id, t.tenant_id, t.app_tenant_id, t.app, t.function_name, t.args, 'pending', 0, t.created
      from unnest(
        ${column((c) => c.callId)}::text[], ${column((c) => c.tenantId)}::text[],
        ${column((c) => c.appTenantId)}::text[], ${column((c) => c.app)}::text[],
        ${column((c) => c.functionName)}::text[], ${column((c) => encode(c.args))}::text[],
        ${column((c) => c.createdAtMs)}::bigint[]) as t(id, tenant_id, app_tenant_id, app, function_name, args, created)
      on conflict (id) do nothing`),
    ).then(() => undefined);
    const settled = insert.catch(() => undefined);
    this.inserting.add(settled);
    void settled.then(() => this.inserting.delete(settled));
    await insert;
  }

  /** Whether the call is on disk and unfinished there (its outcome is to be written). */
  journals(callId: string): boolean {
    return this.unfinished.has(callId);
  }

  /** A call finished: written with the next flush. */
  finished(view: CallView, outcome: CallOutcome): void {
    if (this.closed || !this.unfinished.delete(view.callId)) return;
    this.buffer.set(view.callId, { view, outcome });
    this.timer ??= this.o.clock.setTimer(this.o.clock.now() + (this.o.flushMs ?? 50), () => {
      this.timer = undefined;
      void this.flush();
    });
  }

  /** Writes the buffered outcomes (one statement), after any write in progress. */
  flush(): Promise<void> {
    this.writing = this.writing.then(async () => {
      if (this.buffer.size === 0) return;
      await Promise.all(this.inserting);
      const rows = [...this.buffer.values()];
      this.buffer.clear();
      try {
        await this.write(rows);
      } catch (error) {
        // Kept for the next flush: a call whose outcome never lands runs again after a restart, nothing worse.
        for (const row of rows) if (!this.buffer.has(row.view.callId)) this.buffer.set(row.view.callId, row);
        this.o.logger.error({ err: error, calls: rows.length }, 'cannot write finished calls');
      }
      await this.prune();
    });
    return this.writing;
  }

  private async write(rows: readonly FinishedRow[]): Promise<void> {
    const column = <T>(pick: (r: FinishedRow) => T) => sql.param(rows.map(pick));
    const value = (r: FinishedRow) => (r.outcome.status === 'succeeded' ? encode(r.outcome.value) : null);
    const error = (r: FinishedRow): string | null =>
      r.outcome.status === 'failed' ? JSON.stringify(r.outcome.error) : null;
    await this.o.db.execute(sql`
      update calls set status = u.status, attempts = u.attempts, started_at = u.started_at,
        finished_at = u.finished_at, value = u.value, error = u.error::jsonb
      from unnest(
        ${column((r) => r.view.callId)}::text[], ${column((r) => r.outcome.status)}::text[],
        ${column((r) => r.view.attempts)}::integer[], ${column((r) => r.view.startedAtMs ?? null)}::bigint[],
        ${column((r) => r.view.finishedAtMs ?? this.o.clock.now())}::bigint[], ${column(value)}::text[],
        ${column(error)}::text[]) as u(id, status, attempts, started_at, finished_at, value, error)
      where calls.id = u.id`);
  }

  /** Forgets finished calls older than the retention, at most once a minute. */
  private async prune(): Promise<void> {
    const now = this.o.clock.now();
    if (now - this.lastPruneMs < 60_000) return;
    this.lastPruneMs = now;
    await this.o.db.delete(calls).where(lt(calls.finishedAt, now - this.o.retainMs));
  }

  /** Every unfinished call, and the finished ones still retained, oldest first (the unfinished are tracked again). */
  async load(): Promise<JournaledCall[]> {
    const since = this.o.clock.now() - this.o.retainMs;
    const rows = await this.o.db
      .select()
      .from(calls)
      .where(or(isNull(calls.finishedAt), gte(calls.finishedAt, since)))
      .orderBy(calls.createdAt);
    for (const row of rows) if (row.finishedAt === null) this.unfinished.add(row.id);
    return rows.map((row) => ({
      callId: row.id,
      tenantId: row.tenantId,
      appTenantId: row.appTenantId,
      app: row.app,
      functionName: row.functionName,
      args: decode(row.args) as unknown[],
      createdAtMs: row.createdAt,
      attempts: row.attempts,
      ...(row.startedAt !== null ? { startedAtMs: row.startedAt } : {}),
      ...(row.finishedAt !== null ? { finishedAtMs: row.finishedAt, outcome: outcomeOf(row) } : {}),
    }));
  }

  /** Marks calls finished with `outcome` at once (calls that cannot be taken back: their app is gone). */
  async failNow(callId: string, error: CallError): Promise<void> {
    this.unfinished.delete(callId);
    await this.o.db
      .update(calls)
      .set({ status: 'failed', finishedAt: this.o.clock.now(), error })
      .where(eq(calls.id, callId));
  }

  async close(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    await this.flush();
    this.closed = true;
  }
}

function outcomeOf(row: typeof calls.$inferSelect): CallOutcome {
  if (row.status === 'succeeded')
    return { status: 'succeeded', value: row.value === null ? undefined : decode(row.value) };
  if (row.status === 'failed')
    return {
      status: 'failed',
      error: (row.error as CallError | null) ?? { name: 'Error', message: 'failed' },
    };
  return { status: 'cancelled' };
}

function encode(value: unknown): string {
  return serialize(value).toString('base64');
}

function decode(text: string): unknown {
  return deserialize(Buffer.from(text, 'base64'));
}
