/**
 * Test helper: an empty, migrated in-memory PGlite for each test, without opening one each time. Opening PGlite
 * (even from the migrated template) costs about two seconds of CPU; emptying every table of an open one costs a
 * few milliseconds. One database is opened per test process and handed out again, emptied, to the next test that
 * asks; `close()` leaves it open. Only for tests that use one database at a time, and close their broker first.
 */
import { type OpenedDatabase, openDatabase } from '../broker/db/open-database.ts';
import { reusedDatabase } from './reused-database.ts';

const shared = reusedDatabase(() => openDatabase({}));

/** A migrated database with no rows; `close()` gives it back (the next caller gets it emptied). */
export function emptyDatabase(): Promise<OpenedDatabase> {
  return shared.take();
}
