/**
 * Test helper: one database handed out again and again, emptied each time (every table truncated, identities
 * restarted), as a freshly opened and migrated one would be; the `close()` of what `take()` gives leaves it open.
 * Only for tests that use one database at a time. Kept apart from test/empty-database.ts (which opens it) so that
 * a test that replaces `openDatabase` itself (vi.mock) can hand over the original.
 */
import { sql } from 'drizzle-orm';
import type { OpenedDatabase } from '../broker/db/open-database.ts';

export interface ReusedDatabase {
  /** The database, emptied. */
  take(): Promise<OpenedDatabase>;
  /** Closes it for good (once the test file is done). */
  close(): Promise<void>;
}

/** The database `open` makes (once, on first use), emptied at each `take()`. */
export function reusedDatabase(open: () => Promise<OpenedDatabase>): ReusedDatabase {
  let shared: Promise<OpenedDatabase> | undefined;
  const take = async () => {
    shared ??= open();
    const database = await shared;
    const tables = (await database.db.execute(
      sql`select quote_ident(tablename) as name from pg_tables where schemaname = 'public'`,
    )) as unknown as { rows: { name: string }[] };
    const names = tables.rows.map((row) => row.name);
    if (names.length > 0)
      await database.db.execute(sql.raw(`truncate ${names.join(', ')} restart identity cascade`));
    return { ...database, close: async () => undefined };
  };
  return {
    take,
    async close() {
      const database = shared;
      shared = undefined;
      await (await database)?.close();
    },
  };
}
