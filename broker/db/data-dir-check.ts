/**
 * Is a data directory sound? Read-only checks of what `serve` would open, so that a damaged store is refused with
 * a reason instead of being opened (PGlite aborts on a torn WAL) or, worse, initialised afresh over the old one
 * (PGlite runs initdb in any directory without `PG_VERSION`: leases, tenants and policy history would be gone).
 *
 * A directory is `fresh` when it does not exist or holds nothing but the lock file; only a fresh directory may be
 * initialised. Anything else must be a complete store: `pgdata/` with the PostgreSQL version PGlite writes, a
 * control file whose CRC holds, the WAL segment of the last checkpoint, and every WAL segment at full size.
 */
import { closeSync, lstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LOCK_FILE } from './data-dir-lock.ts';

/**
 * Present while `pgdata/` is first initialised: a crash part-way leaves it, and the half-made `pgdata/` is then
 * ours to discard rather than a damaged store.
 */
export const INIT_MARKER = 'pgdata.initialising';
/** The PostgreSQL major version of the bundled PGlite, as it writes `PG_VERSION`. */
export const PG_MAJOR = '18';
/** `pg_control_version` of PostgreSQL 18 and where its fields sit in `global/pg_control` (ControlFileData). */
const CONTROL_VERSION = 1800;
const CONTROL = {
  version: 8,
  state: 16,
  checkpointTime: 24,
  redo: 40,
  timeline: 48,
  segmentSize: 228,
  crc: 292,
} as const;
const CONTROL_FILE_SIZE = 8192;
const DB_STATES = [
  'starting up',
  'shut down',
  'shut down in recovery',
  'shutting down',
  'in crash recovery',
  'in archive recovery',
  'in production',
] as const;

export interface DataDirReport {
  readonly dir: string;
  /** `fresh`: may be initialised; `sound`: may be opened; `damaged`: must not be touched. */
  readonly verdict: 'fresh' | 'sound' | 'damaged';
  /** What is wrong, each naming the file; empty unless damaged. */
  readonly problems: readonly string[];
  /** What was read (PostgreSQL version, state at the last shutdown, last checkpoint), for `db check`. */
  readonly facts: readonly string[];
}

export interface CheckOptions {
  /** The database is PGlite in `<dir>/pgdata` (default); false with DATABASE_URL, where only the token lives here. */
  readonly pglite?: boolean;
}

export function checkDataDir(dir: string, options: CheckOptions = {}): DataDirReport {
  const problems: string[] = [];
  const facts: string[] = [];
  const report = (verdict: DataDirReport['verdict']): DataDirReport => ({ dir, verdict, problems, facts });

  const top = statOf(dir);
  if (top === undefined) return report('fresh');
  if (!top.isDirectory()) {
    problems.push(`${dir} is not a directory`);
    return report('damaged');
  }
  const entries = readdirSync(dir).filter((name) => name !== LOCK_FILE);
  if (entries.length === 0) return report('fresh');
  if (entries.includes(INIT_MARKER) && entries.every((name) => name === INIT_MARKER || name === 'pgdata')) {
    facts.push('a first start was cut short while creating the database; it is created again');
    return report('fresh');
  }

  const token = statOf(join(dir, 'operator-token'));
  if (token !== undefined && !token.isFile()) problems.push(`${join(dir, 'operator-token')} is not a file`);
  if (options.pglite === false) return report(problems.length > 0 ? 'damaged' : 'sound');

  const pgdata = join(dir, 'pgdata');
  const pg = statOf(pgdata);
  if (pg === undefined) {
    problems.push(
      `${dir} holds files but no pgdata/: not a gpubroker data directory, or its database is gone`,
    );
    return report('damaged');
  }
  if (!pg.isDirectory()) {
    problems.push(`${pgdata} is not a directory`);
    return report('damaged');
  }
  checkPgdata(pgdata, problems, facts);
  return report(problems.length > 0 ? 'damaged' : 'sound');
}

function checkPgdata(pgdata: string, problems: string[], facts: string[]): void {
  const version = readText(join(pgdata, 'PG_VERSION'));
  if (version === undefined) problems.push(`${join(pgdata, 'PG_VERSION')} is missing`);
  else if (version.trim() !== PG_MAJOR)
    problems.push(
      `${join(pgdata, 'PG_VERSION')} says "${version.trim().slice(0, 20)}", expected ${PG_MAJOR}`,
    );
  else facts.push(`PostgreSQL ${PG_MAJOR} (PGlite)`);
  if (!statOf(join(pgdata, 'base'))?.isDirectory()) problems.push(`${join(pgdata, 'base')} is missing`);

  const controlFile = join(pgdata, 'global', 'pg_control');
  const control = readBytes(controlFile);
  if (control === undefined) {
    problems.push(`${controlFile} is missing`);
    return;
  }
  if (control.length !== CONTROL_FILE_SIZE) {
    problems.push(`${controlFile} is ${control.length} bytes, expected ${CONTROL_FILE_SIZE}`);
    return;
  }
  if (crc32c(control.subarray(0, CONTROL.crc)) !== control.readUInt32LE(CONTROL.crc)) {
    problems.push(`${controlFile} is corrupt (its checksum does not match)`);
    return;
  }
  if (control.readUInt32LE(CONTROL.version) !== CONTROL_VERSION) {
    problems.push(
      `${controlFile} has version ${control.readUInt32LE(CONTROL.version)}, expected ${CONTROL_VERSION}`,
    );
    return;
  }
  const state = DB_STATES[control.readUInt32LE(CONTROL.state)] ?? 'unknown';
  const checkpointAt = new Date(Number(control.readBigInt64LE(CONTROL.checkpointTime)) * 1000);
  facts.push(
    `state at last stop: ${state}${state === 'in production' ? ' (not shut down cleanly; recovery replays the WAL on open)' : ''}`,
    `last checkpoint: ${checkpointAt.toISOString()}`,
  );
  checkWal(pgdata, control, problems, facts);
}

/** The WAL must hold the segment the last checkpoint's redo starts in, and no segment may be cut short. */
function checkWal(pgdata: string, control: Buffer, problems: string[], facts: string[]): void {
  const walDir = join(pgdata, 'pg_wal');
  if (!statOf(walDir)?.isDirectory()) {
    problems.push(`${walDir} is missing`);
    return;
  }
  const segmentSize = control.readUInt32LE(CONTROL.segmentSize);
  const segments = readdirSync(walDir).filter((name) => /^[0-9A-F]{24}$/.test(name));
  for (const name of segments) {
    const size = statSync(join(walDir, name)).size;
    if (size !== segmentSize)
      problems.push(
        `${join(walDir, name)} is ${size} bytes, expected ${segmentSize} (a truncated WAL segment)`,
      );
  }
  const redo = control.readBigUInt64LE(CONTROL.redo);
  const timeline = control.readUInt32LE(CONTROL.timeline);
  const segmentNo = redo / BigInt(segmentSize);
  const perId = 0x1_0000_0000n / BigInt(segmentSize);
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  const redoSegment = `${hex(timeline)}${hex(segmentNo / perId)}${hex(segmentNo % perId)}`;
  if (!segments.includes(redoSegment))
    problems.push(`${join(walDir, redoSegment)} is missing (the last checkpoint's WAL)`);
  else if (readFirstByte(join(walDir, redoSegment)) === undefined)
    problems.push(`${join(walDir, redoSegment)} cannot be read`);
  facts.push(`WAL: ${segments.length} segment(s) of ${segmentSize / 1_048_576} MiB`);
}

function statOf(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function readBytes(path: string): Buffer | undefined {
  try {
    return statOf(path)?.isFile() ? readFileSync(path) : undefined;
  } catch {
    return undefined;
  }
}

function readText(path: string): string | undefined {
  return readBytes(path)?.toString('utf8');
}

function readFirstByte(path: string): number | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const one = Buffer.alloc(1);
    return readSync(fd, one, 0, 1, 0) === 1 ? (one[0] as number) : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** CRC-32C (Castagnoli), as PostgreSQL checksums its control file. */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = (CRC32C_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
