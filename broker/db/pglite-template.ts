/**
 * A migrated PGlite database to start from, instead of running initdb and every migration for each new database:
 * initdb plus migrations cost seconds, restoring their result from a tarball a fraction of that (tests open
 * hundreds of databases; a first `serve` opens one). The template is built once per migration set and PGlite
 * version and cached in the system's temporary directory, so other processes (test files, the next start) reuse
 * it. It holds nothing but the schema: no rows, no tokens.
 */
import { createHash } from 'node:crypto';
import { openAsBlob, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';

let cached: { key: string; file: Promise<string | undefined> } | undefined;

/**
 * The migrated template's tarball (a dump of PGlite's data directory) for `migrationsFolder`, or undefined when
 * one cannot be made (then start from scratch).
 */
export function migratedTemplateFile(migrationsFolder: string): Promise<string | undefined> {
  const key = templateKey(migrationsFolder);
  if (cached?.key !== key) cached = { key, file: loadOrBuild(migrationsFolder, key) };
  return cached.file;
}

/**
 * The template as a Blob for PGlite's `loadDataDir` (in-memory databases). Backed by the file, not read into
 * memory: a 40 MB buffer kept for the life of a process would be a fifth of an idle broker's memory.
 */
export async function migratedTemplate(migrationsFolder: string): Promise<Blob | undefined> {
  const file = await migratedTemplateFile(migrationsFolder);
  return file === undefined ? undefined : openAsBlob(file);
}

/** Forgets a template that failed to restore, so that the next open builds a new one. */
export function discardTemplate(migrationsFolder: string): void {
  rmSync(templateFile(templateKey(migrationsFolder)), { force: true });
  cached = undefined;
}

async function loadOrBuild(migrationsFolder: string, key: string): Promise<string | undefined> {
  const file = templateFile(key);
  try {
    if (statSync(file).isFile()) return file;
  } catch {
    // Not built yet.
  }
  try {
    const client = new PGlite();
    await migrate(drizzle({ client }), { migrationsFolder });
    const dump = await client.dumpDataDir('none');
    await client.close();
    // Written whole or not at all: another process may read it at any moment.
    const partial = `${file}.${process.pid}.partial`;
    writeFileSync(partial, Buffer.from(await dump.arrayBuffer()));
    renameSync(partial, file);
    return file;
  } catch {
    return undefined;
  }
}

function templateKey(migrationsFolder: string): string {
  const hash = createHash('sha256');
  hash.update(`pglite ${pgliteVersion()}\n`);
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else hash.update(`${name}\n`).update(readFileSync(path));
    }
  };
  walk(migrationsFolder);
  return hash.digest('hex').slice(0, 16);
}

/** The installed PGlite's version (its package.json is not exported: found beside its entry point). */
function pgliteVersion(): string {
  let dir = dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'));
  while (dir !== dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (manifest.name === '@electric-sql/pglite') return manifest.version ?? 'unknown';
    } catch {
      // Not here: one level up.
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

function templateFile(key: string): string {
  return join(tmpdir(), `gpubroker-pglite-template-${key}.tar`);
}
