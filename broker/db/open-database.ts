/**
 * Opens the broker's database and applies the committed migrations: PGlite (embedded PostgreSQL) in
 * `<dataDir>/pgdata` by default, in memory when no data directory is given (tests), or a PostgreSQL server
 * (postgres.js) when a `postgres://` URL is given (`DATABASE_URL`). Both speak the same schema.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { x as extractTar } from 'tar';
import { StartupError } from '../../lib/errors.ts';
import * as meterSchema from '../../runtime/meter/schema.ts';
import { checkDataDir, INIT_MARKER } from './data-dir-check.ts';
import { DrizzlePGlite } from './drizzle-pglite.ts';
import { discardTemplate, migratedTemplate, migratedTemplateFile } from './pglite-template.ts';
import * as brokerSchema from './schema.ts';

const schema = { ...brokerSchema, ...meterSchema };

export type Schema = typeof schema;
export type Database = PgDatabase<PgQueryResultHKT, Schema>;

export interface OpenedDatabase {
  readonly db: Database;
  readonly kind: 'pglite' | 'postgres';
  /** Takes the control-loop lock if free (PostgreSQL advisory lock held by one connection); PGlite: always. */
  tryLeadership(): Promise<boolean>;
  /**
   * Operations begun and not settled, where the client counts them (PGlite); undefined where it does not. A
   * simulation moves its clock on only when none is in flight.
   */
  operationsInFlight(): number | undefined;
  close(): Promise<void>;
}

/**
 * PostgreSQL zeroes its shared memory as it starts: at PGlite's 128 MB of shared buffers that was ~0.4 s of every
 * open (half of a restart's database time, measured), for a database of a few MB whose files the OS caches anyway.
 */
const PGLITE_START_PARAMS = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'];

/**
 * V8 compiles a WebAssembly function that runs hot again with its optimizing compiler, on background threads.
 * Opening PGlite (PostgreSQL's start-up, crash recovery, the first queries) makes hundreds of its functions hot at
 * once: compiling them cost ~0.5 s of CPU beside the open (measured: its background threads 0.6 -> 0.2 s), which a
 * restart on a busy machine waits for. So while PGlite's module is made, its functions get ~55x V8's budget before
 * they tier up (the queries a broker repeats still do, soon); modules made after (the solver's) get V8's default.
 */
const PGLITE_TIERING_BUDGET = 100_000_000;
/** `--wasm-tiering-budget`'s default in the V8 of Node 20 to 24. */
const V8_TIERING_BUDGET = 1_800_000;
let pgliteOpening = 0;

/** `open()` with PGlite's tier-up budget in force (the flag is the process's: the last open in flight restores it). */
async function withPgliteTierUp<T>(open: () => Promise<T>): Promise<T> {
  if (pgliteOpening++ === 0) setFlagsFromString(`--wasm-tiering-budget=${PGLITE_TIERING_BUDGET}`);
  try {
    return await open();
  } finally {
    if (--pgliteOpening === 0) setFlagsFromString(`--wasm-tiering-budget=${V8_TIERING_BUDGET}`);
  }
}

const MIGRATIONS = fileURLToPath(new URL('./migrations/', import.meta.url));
/** Key of the advisory lock that makes one replica the loop's leader. */
const LOOP_LOCK_KEY = 0x6770_6272; // "gpbr"

export interface OpenDatabaseOptions {
  /** `postgres://…`; takes precedence over `dataDir`. */
  readonly url?: string;
  /** Directory for PGlite's files; omitted: an in-memory database. */
  readonly dataDir?: string;
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<OpenedDatabase> {
  if (options.url) return openPostgres(options.url);
  const client = await withPgliteTierUp(() =>
    options.dataDir ? openPgliteDir(options.dataDir) : openPgliteInMemory(),
  );
  const db = drizzlePglite({ client, schema });
  try {
    await migratePglite(db, { migrationsFolder: MIGRATIONS });
  } catch (error) {
    await client.close().catch(() => undefined);
    if (!options.dataDir) throw error;
    throw unopenable(options.dataDir, error);
  }
  if (options.dataDir) rmSync(join(options.dataDir, INIT_MARKER), { force: true });
  return {
    db: db as unknown as Database,
    kind: 'pglite',
    // One process owns a PGlite directory, so it is always the leader.
    tryLeadership: async () => true,
    operationsInFlight: () => (client instanceof DrizzlePGlite ? client.operationsInFlight : undefined),
    close: () => client.close(),
  };
}

/**
 * In memory, a new WAL segment is not written full of zeros first (`wal_init_zero=off`: only its last byte): in
 * PGlite's memory file system each write past a file's end grows it by 1/8 with a copy of all of it, so zeroing a
 * 16 MB segment in 8 kB writes copied it two dozen times (a simulation's densest days: 6 % of the wall time).
 */
const IN_MEMORY_START_PARAMS = [...PGLITE_START_PARAMS, '-c', 'wal_init_zero=off'];

/** An in-memory PGlite restored from the migrated template (see pglite-template.ts), else created from scratch. */
async function openPgliteInMemory(): Promise<PGlite> {
  const template = await migratedTemplate(MIGRATIONS);
  if (template) {
    const client = new DrizzlePGlite(undefined, {
      loadDataDir: template,
      startParams: IN_MEMORY_START_PARAMS,
    });
    try {
      await client.waitReady;
      return client;
    } catch {
      discardTemplate(MIGRATIONS);
    }
  }
  return new DrizzlePGlite(undefined, { startParams: IN_MEMORY_START_PARAMS });
}

/**
 * PGlite in `<dataDir>/pgdata`, created only in a fresh directory (see data-dir-check.ts): PGlite would otherwise
 * run initdb over any directory that lacks `PG_VERSION`. A damaged store is refused untouched.
 */
async function openPgliteDir(dataDir: string): Promise<PGlite> {
  const report = checkDataDir(dataDir);
  if (report.verdict === 'damaged')
    throw new StartupError(
      '--data-dir',
      `${dataDir} is damaged: ${report.problems[0]}; nothing was changed. Run \`gpubroker db check --data-dir ${dataDir}\`, restore it from a backup or move it away`,
    );
  const pgdata = join(dataDir, 'pgdata');
  if (report.verdict === 'fresh') {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, INIT_MARKER), '');
    rmSync(pgdata, { recursive: true, force: true });
    mkdirSync(pgdata);
  }
  // A fresh directory starts as a copy of the migrated template, unpacked here onto disk: PGlite then opens it as
  // it opens any existing store. (Restored through PGlite's loadDataDir instead, the 40 MB dump passed through its
  // WebAssembly memory, which never shrinks: a broker started fresh held 340 MB idle against 200 MB restarted.)
  if (report.verdict === 'fresh') await unpackTemplate(pgdata);
  const client = new DrizzlePGlite(pgdata, { startParams: PGLITE_START_PARAMS });
  try {
    await client.waitReady;
  } catch (error) {
    throw unopenable(dataDir, error);
  }
  return client;
}

/** The migrated template unpacked into an empty `pgdata`; left empty (PGlite runs initdb) when there is none. */
async function unpackTemplate(pgdata: string): Promise<void> {
  const file = await migratedTemplateFile(MIGRATIONS);
  if (!file) return;
  try {
    await extractTar({ file, cwd: pgdata });
  } catch {
    discardTemplate(MIGRATIONS);
    rmSync(pgdata, { recursive: true, force: true });
    mkdirSync(pgdata);
  }
}

function unopenable(dataDir: string, error: unknown): StartupError {
  const reason = (error as Error).message?.split('\n')[0] ?? String(error);
  return new StartupError(
    '--data-dir',
    `the database in ${dataDir} cannot be opened (${reason}); run \`gpubroker db check --data-dir ${dataDir}\``,
    { cause: error },
  );
}

async function openPostgres(url: string): Promise<OpenedDatabase> {
  // Loaded only for a PostgreSQL server: the embedded default starts without them.
  const [{ default: postgres }, { drizzle: drizzlePostgres }, { migrate: migratePostgres }] =
    await Promise.all([
      import('postgres'),
      import('drizzle-orm/postgres-js'),
      import('drizzle-orm/postgres-js/migrator'),
    ]);
  const sql = postgres(url, { max: 10, onnotice: () => {} });
  const db = drizzlePostgres({ client: sql, schema });
  // Concurrent replicas starting together must not race on migrations.
  const reserved = await sql.reserve();
  try {
    await reserved`select pg_advisory_lock(${LOOP_LOCK_KEY + 1})`;
    await migratePostgres(db, { migrationsFolder: MIGRATIONS });
    await reserved`select pg_advisory_unlock(${LOOP_LOCK_KEY + 1})`;
  } finally {
    reserved.release();
  }
  // The loop lock lives on its own connection for the life of the process: it is released when the process dies.
  let lockConnection: Awaited<ReturnType<typeof sql.reserve>> | undefined;
  let leader = false;
  return {
    db: db as unknown as Database,
    kind: 'postgres',
    operationsInFlight: () => undefined,
    async tryLeadership() {
      try {
        lockConnection ??= await sql.reserve();
        if (leader) {
          // Still ours? A dropped connection (server restart, network) silently released the lock.
          const held = await lockConnection<{ held: boolean }[]>`
            select exists (select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()
              and objid = ${LOOP_LOCK_KEY}) as held`;
          leader = held[0]?.held === true;
          if (leader) return true;
        }
        const [row] = await lockConnection<
          { locked: boolean }[]
        >`select pg_try_advisory_lock(${LOOP_LOCK_KEY}) as locked`;
        leader = row?.locked === true;
      } catch {
        // The lock connection is gone, and the lock with it: follow until a new connection wins it again.
        lockConnection?.release();
        lockConnection = undefined;
        leader = false;
      }
      return leader;
    },
    async close() {
      lockConnection?.release();
      await sql.end({ timeout: 5 });
    },
  };
}
