/**
 * The call journal on a real (in-memory) PGlite: what it writes when calls are accepted and when they finish, what
 * it gives back after a restart, and that calls nobody journaled (a simulation's) are never written.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import type { CallView } from '../../runtime/runtime.ts';
import { emptyDatabase } from '../../test/empty-database.ts';
import { calls } from '../db/schema.ts';
import { CallJournal } from './call-journal.ts';

const view = (callId: string, at: number): CallView => ({
  callId,
  tenantId: 't1',
  appTenantId: 't1',
  app: 'demo',
  functionName: 'f',
  status: 'succeeded',
  attempts: 2,
  createdAtMs: 1_000,
  startedAtMs: 1_500,
  finishedAtMs: at,
});

describe('the call journal', () => {
  it('keeps accepted calls, their outcomes and their values across a restart; forgets what it never accepted', async () => {
    const database = await emptyDatabase();
    try {
      const clock = new VirtualClock(10_000);
      const journal = new CallJournal({
        db: database.db,
        clock,
        logger: pino({ level: 'silent' }),
        retainMs: 60_000,
      });
      const accepted = ['a', 'b', 'c', 'd'].map((callId, i) => ({
        callId,
        tenantId: 't1',
        appTenantId: 't1',
        app: 'demo',
        functionName: 'f',
        args: [{ n: i, when: new Date(0), bytes: new Uint8Array([i]) }],
        createdAtMs: 1_000,
      }));
      await journal.accepted(accepted);
      journal.finished(view('a', 2_000), { status: 'succeeded', value: new Map([['k', [1, 2n]]]) });
      journal.finished(
        { ...view('b', 2_100), status: 'failed' },
        {
          status: 'failed',
          error: { name: 'TypeError', message: 'boom', stack: 'at f' },
        },
      );
      journal.finished({ ...view('c', 2_200), status: 'cancelled' }, { status: 'cancelled' });
      // Not journaled (a simulation's call): never written.
      journal.finished(view('sim-1', 2_300), { status: 'succeeded', value: 1 });
      await journal.close();
      expect((await database.db.select().from(calls)).map((r) => r.id).sort()).toEqual(['a', 'b', 'c', 'd']);

      // The next process.
      const again = new CallJournal({
        db: database.db,
        clock,
        logger: pino({ level: 'silent' }),
        retainMs: 60_000,
      });
      const loaded = new Map((await again.load()).map((c) => [c.callId, c]));
      expect(loaded.get('a')).toMatchObject({
        attempts: 2,
        startedAtMs: 1_500,
        finishedAtMs: 2_000,
        outcome: { status: 'succeeded', value: new Map([['k', [1, 2n]]]) },
      });
      expect(loaded.get('a')?.args).toEqual([{ n: 0, when: new Date(0), bytes: new Uint8Array([0]) }]);
      expect(loaded.get('b')?.outcome).toEqual({
        status: 'failed',
        error: { name: 'TypeError', message: 'boom', stack: 'at f' },
      });
      expect(loaded.get('c')?.outcome).toEqual({ status: 'cancelled' });
      expect(loaded.get('d')).toMatchObject({ attempts: 0 });
      expect(loaded.get('d')?.outcome).toBeUndefined();
      // The unfinished one is tracked again: its outcome is written when it finishes after the restart.
      again.finished(view('d', 3_000), { status: 'succeeded', value: 'late' });
      await again.flush();
      const [row] = (await database.db.select().from(calls)).filter((r) => r.id === 'd');
      expect(row?.status).toBe('succeeded');

      // Finished calls older than the retention are not given back, and are deleted at the next prune.
      await clock.advanceTo(clock.now() + 120_000);
      const later = new CallJournal({
        db: database.db,
        clock,
        logger: pino({ level: 'silent' }),
        retainMs: 60_000,
      });
      expect(await later.load()).toEqual([]);
    } finally {
      await database.close();
    }
  });
});
