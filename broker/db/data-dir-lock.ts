/**
 * One broker per data directory. PGlite has no lock of its own: two processes on one `pgdata/` both write it and
 * both run the control loop. The lock is a file created exclusively (`O_EXCL`) holding the owner's pid and, on
 * Linux, its start time, so that a pid reused after a crash is not mistaken for the owner. A lock whose owner is
 * dead is stale and taken over (as PostgreSQL does with `postmaster.pid`); the owner removes it on a clean stop.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { StartupError } from '../../lib/errors.ts';

export const LOCK_FILE = 'broker.lock';

export class DataDirLockedError extends StartupError {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(
      '--data-dir',
      `${dir} is in use by another broker (pid ${pid}); stop it or pick another --data-dir`,
    );
  }
}

export interface DataDirLock {
  readonly file: string;
  release(): void;
}

interface Owner {
  readonly pid: number;
  readonly startedAt: string | null;
}

/** Locks in this process, so that a second broker here is refused as one in another process would be. */
const heldHere = new Set<string>();

export function lockDataDir(dir: string): DataDirLock {
  const file = join(dir, LOCK_FILE);
  const me: Owner = { pid: process.pid, startedAt: startTimeOf(process.pid) };
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = readOwner(file);
      if (owner && (heldHere.has(file) || owner.pid !== process.pid) && alive(owner))
        throw new DataDirLockedError(dir, owner.pid);
      // Stale (its owner died) or unreadable (torn by a crash while written): take it over.
      removeIfPresent(file);
      continue;
    }
    try {
      writeSync(fd, `${JSON.stringify(me)}\n`);
    } finally {
      closeSync(fd);
    }
    heldHere.add(file);
    let released = false;
    return {
      file,
      release() {
        if (released) return;
        released = true;
        heldHere.delete(file);
        // Only our own lock: a broker that found ours stale (it never is while we live) would own the file now.
        if (readOwner(file)?.pid === me.pid) removeIfPresent(file);
      },
    };
  }
  throw new StartupError('--data-dir', `cannot lock ${dir} (${file} keeps changing)`);
}

/** The pid of the live broker holding `dir`'s lock, if any (read-only). */
export function lockHolder(dir: string): number | undefined {
  const owner = readOwner(join(dir, LOCK_FILE));
  return owner && alive(owner) ? owner.pid : undefined;
}

function readOwner(file: string): Owner | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<Owner>;
    return typeof parsed.pid === 'number' && Number.isInteger(parsed.pid) && parsed.pid > 0
      ? { pid: parsed.pid, startedAt: typeof parsed.startedAt === 'string' ? parsed.startedAt : null }
      : undefined;
  } catch {
    return undefined;
  }
}

function alive(owner: Owner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // Same pid, other process: the owner died and its pid was reused.
  const startedAt = startTimeOf(owner.pid);
  return owner.startedAt === null || startedAt === null || startedAt === owner.startedAt;
}

/** A process's start time in clock ticks since boot (Linux `/proc/<pid>/stat`, field 22); null elsewhere. */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function removeIfPresent(file: string): void {
  try {
    unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
