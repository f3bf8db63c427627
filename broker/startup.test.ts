/**
 * The start-up sequence against damaged data directories, a second broker, a port in use and settings that never
 * answer: each fails with one line naming the setting, leaves nothing running and changes nothing on disk.
 */
import { createHash } from 'node:crypto';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StartupError } from '../lib/errors.ts';
import { checkDataDir, INIT_MARKER } from './db/data-dir-check.ts';
import { DataDirLockedError, LOCK_FILE, lockDataDir } from './db/data-dir-lock.ts';
import { STARTUP_STEP_TIMEOUT_MS, startServer } from './server.ts';

let root: string;
/** A data directory of a broker that ran and stopped cleanly; each case damages a copy of it. */
let sound: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'gpubroker-startup-'));
  sound = join(root, 'sound');
  const server = await startServer({ port: 0, dataDir: sound, schedule: false });
  await server.close();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Every file's path, size and content hash under `dir`: what "nothing was changed" compares. */
function fingerprint(dir: string): string {
  const hash = createHash('sha256');
  const walk = (path: string) => {
    const stat = statSync(path);
    if (stat.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(path, name));
    else hash.update(`${path}\0${stat.size}\0`).update(readFileSync(path));
  };
  walk(dir);
  return hash.digest('hex');
}

function copyOfSound(name: string): string {
  const dir = join(root, name);
  cpSync(sound, dir, { recursive: true });
  return dir;
}

async function startupFailure(options: Parameters<typeof startServer>[0]): Promise<StartupError> {
  const error = await startServer({ port: 0, schedule: false, ...options }).then(
    async (server) => {
      await server.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StartupError);
  return error as StartupError;
}

const WAL_SEGMENT = (dir: string) => {
  const wal = join(dir, 'pgdata', 'pg_wal');
  return join(wal, readdirSync(wal).find((name) => /^[0-9A-F]{24}$/.test(name)) as string);
};

describe('a damaged data directory', () => {
  const damages: [string, (dir: string) => void, RegExp][] = [
    ['PG_VERSION removed', (dir) => rmSync(join(dir, 'pgdata', 'PG_VERSION')), /PG_VERSION is missing/],
    [
      'PG_VERSION garbled',
      (dir) => writeFileSync(join(dir, 'pgdata', 'PG_VERSION'), 'x\u0007y\n'),
      /PG_VERSION says/,
    ],
    [
      'a corrupt control file',
      (dir) => {
        const file = join(dir, 'pgdata', 'global', 'pg_control');
        const bytes = readFileSync(file);
        bytes.writeUInt32LE((bytes.readUInt32LE(40) ^ 0xdeadbeef) >>> 0, 40);
        writeFileSync(file, bytes);
      },
      /pg_control is corrupt/,
    ],
    [
      'a control file cut short',
      (dir) => truncateSync(join(dir, 'pgdata', 'global', 'pg_control'), 100),
      /pg_control is 100 bytes/,
    ],
    ['a truncated WAL segment', (dir) => truncateSync(WAL_SEGMENT(dir), 8192), /truncated WAL segment/],
    ['the last checkpoint’s WAL removed', (dir) => rmSync(WAL_SEGMENT(dir)), /last checkpoint's WAL/],
    [
      'pgdata that is a file',
      (dir) => {
        rmSync(join(dir, 'pgdata'), { recursive: true });
        writeFileSync(join(dir, 'pgdata'), 'not a database');
      },
      /pgdata is not a directory/,
    ],
    ['pgdata removed', (dir) => rmSync(join(dir, 'pgdata'), { recursive: true }), /no pgdata/],
    [
      'an operator token that is a directory',
      (dir) => {
        rmSync(join(dir, 'operator-token'));
        mkdirSync(join(dir, 'operator-token'));
      },
      /operator-token is not a file/,
    ],
  ];

  it.each(damages)('with %s is refused, named, and left untouched', async (name, damage, problem) => {
    const dir = copyOfSound(name.replace(/\W+/g, '-'));
    damage(dir);
    expect(checkDataDir(dir).verdict).toBe('damaged');
    const before = fingerprint(dir);
    const error = await startupFailure({ dataDir: dir });
    expect(error.setting).toBe('--data-dir');
    expect(error.message).toContain(dir);
    expect(error.message).toMatch(problem);
    expect(error.message).not.toContain('\n');
    expect(fingerprint(dir)).toBe(before);
  });

  it('that is a file is refused', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'hello');
    const error = await startupFailure({ dataDir: file });
    expect(error.message).toMatch(/a-file is not a directory/);
    expect(readFileSync(file, 'utf8')).toBe('hello');
  });

  it('that holds someone else’s files is never initialised', async () => {
    const dir = join(root, 'foreign');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    const error = await startupFailure({ dataDir: dir });
    expect(error.message).toMatch(/holds files but no pgdata/);
    expect(readdirSync(dir)).toEqual(['notes.txt']);
  });
});

describe('a fresh data directory', () => {
  it('left half-made by a first start that crashed is made again', async () => {
    const dir = join(root, 'half-made');
    mkdirSync(join(dir, 'pgdata'), { recursive: true });
    writeFileSync(join(dir, INIT_MARKER), '');
    writeFileSync(join(dir, 'pgdata', 'postgresql.conf'), '# cut short');
    expect(checkDataDir(dir).verdict).toBe('fresh');
    const server = await startServer({ port: 0, dataDir: dir, schedule: false });
    await server.close();
    expect(checkDataDir(dir).verdict).toBe('sound');
    expect(readdirSync(dir)).not.toContain(INIT_MARKER);
  });
});

describe('the data directory lock', () => {
  it('refuses a second broker on one directory, naming the pid that holds it', async () => {
    const dir = copyOfSound('locked');
    const first = await startServer({ port: 0, dataDir: dir, schedule: false });
    try {
      const error = await startupFailure({ dataDir: dir });
      expect(error).toBeInstanceOf(DataDirLockedError);
      expect(error.message).toContain(`pid ${process.pid}`);
    } finally {
      await first.close();
    }
    expect(readdirSync(dir)).not.toContain(LOCK_FILE);
  });

  it('takes over the lock of a broker that died', () => {
    const dir = join(root, 'stale');
    mkdirSync(dir);
    // A pid that is not running (the kernel's pid_max is at most 2^22).
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 2 ** 22 + 17, startedAt: '1' }));
    const lock = lockDataDir(dir);
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    lock.release();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('takes over a lock whose pid was reused by another process', () => {
    const dir = join(root, 'reused');
    mkdirSync(dir);
    // Our parent is alive, but it did not start at the time the lock records.
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.ppid, startedAt: '1' }));
    lockDataDir(dir).release();
  });
});

describe('settings that fail', () => {
  let silent: Server;
  let silentPort: number;
  beforeAll(async () => {
    // Accepts connections and never answers.
    silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as { port: number }).port;
  });
  afterAll(() => {
    silent.close();
  });

  it('a port in use fails before anything starts', async () => {
    const dir = join(root, 'port-in-use');
    const error = await startupFailure({ port: silentPort, dataDir: dir });
    expect(error.setting).toBe('--port');
    expect(error.message).toContain(`127.0.0.1:${silentPort} is already in use`);
    // Nothing was opened: no database, no lock left behind.
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a host that does not resolve fails within 10 s', async () => {
    const started = performance.now();
    const error = await startupFailure({ host: 'no-such-host.invalid' });
    expect(error.setting).toBe('--host');
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('a provider server that never answers fails within its step deadline (under 10 s by default)', async () => {
    expect(STARTUP_STEP_TIMEOUT_MS).toBeLessThan(10_000);
    const started = performance.now();
    const error = await startupFailure({
      providers: [`http://127.0.0.1:${silentPort}`],
      startupStepTimeoutMs: 500,
    });
    expect(error.setting).toBe('--providers');
    expect(error.message).toContain('no answer within 0.5 s');
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
