/**
 * The command line's build, kept fresh against its sources: bin/gpubroker.ts and every file of this repository it
 * imports, bundled by esbuild into a few ES modules (one per command, and shared chunks) under
 * `node_modules/.cache/gpubroker/`. A start then loads those files with Node's own loader instead of ~450 modules
 * through tsx's loader hooks, which cost more than a second of every `serve` start (measured: importing the server
 * 1.9 s under tsx, 0.6 s from the build). The pure-JavaScript packages of the server's path (INLINE: hundreds of
 * small modules, each a file for Node's loader to find and link) are bundled too (0.5 -> 0.4 s); the others stay
 * imports, resolved from node_modules as before (their own files, WebAssembly, workers, native code).
 *
 * Never stale: each start compares the size and modification time of every file the build was made from (and of
 * tsconfig.json, esbuild and this file), ~500 stats; any difference makes it again (about a second) before it runs.
 * Nothing to run by hand: `npm install` and `npm start` stay the two commands. `GPUBROKER_BUILD=0` runs the sources
 * under tsx instead.
 *
 * Each source file keeps its own `import.meta.url` (its place in the source tree), so that what it finds beside
 * itself (migrations, catalogs, workers) it still finds there.
 */
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { extname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CACHE = join(ROOT, 'node_modules', '.cache', 'gpubroker');
/** One per checkout and entry: node_modules may be shared (a link) by work trees of other sources. */
const manifestOf = (entry) =>
  join(CACHE, `${createHash('sha256').update(`${ROOT}\0${entry}`).digest('hex').slice(0, 12)}.json`);
const lockOf = (entry) => manifestOf(entry).replace(/\.json$/, '.lock');
const RETRY_FAILED_BUILD_MS = 60_000;
/** How long a start waits for another's build before it runs the sources under tsx. */
const BUILD_WAIT_MS = 30_000;
/** Besides the bundled files: what else decides the build's output. */
const SETTINGS = ['tsconfig.json', 'node_modules/esbuild/package.json', 'bin/build-cache.js'];
/** A replaced build is removed this long after: a process that started from it has loaded what it needs by then. */
const KEEP_OLD_BUILDS_MS = 60 * 60 * 1000;
/** Packages bundled into the build: ES modules of plain JavaScript that read no files of their own. */
const INLINE = new Set([
  'zod',
  'drizzle-orm',
  'hono',
  '@hono/node-server',
  '@hono/zod-openapi',
  '@hono/zod-validator',
  '@asteasolutions/zod-to-openapi',
  'csv-parse',
  'croner',
]);
/** zod's index of its locales (see build). */
const ZOD_LOCALES = /[\\/]node_modules[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/;
/** Mapped to the SDK's sources by tsconfig.json `paths`, as tsx maps them. */
const SDK_NAMES = new Set(['gpubroker', '@gpubroker/sdk']);
const SOURCE_URL = '__gpubrokerSourceUrl';
const LOADERS = {
  '.ts': 'ts',
  '.mts': 'ts',
  '.cts': 'ts',
  '.js': 'js',
  '.mjs': 'js',
  '.cjs': 'js',
  '.json': 'json',
};

/**
 * The URL of the built `entry` (a path from the repository root), made again first when a source changed; undefined
 * when it cannot be built here (the caller then runs the sources under tsx, where the same problem shows).
 */
export async function freshBuild(entry = 'bin/gpubroker.ts') {
  try {
    const built = current(entry);
    if (built !== undefined) return built || undefined;
    mkdirSync(CACHE, { recursive: true });
    // One process builds; the others (a test suite starts several at once) wait for its build, or for the lock to
    // go stale (its builder was killed), rather than each making the same build.
    for (const until = Date.now() + BUILD_WAIT_MS; Date.now() < until; ) {
      if (lock(entry)) {
        try {
          return (current(entry) ?? (await build(entry))) || undefined;
        } finally {
          rmSync(lockOf(entry), { recursive: true, force: true });
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      const theirs = current(entry);
      if (theirs !== undefined) return theirs || undefined;
    }
    return undefined;
  } catch {
    return undefined;
  }
}

/** Takes the build lock (a directory: made or not, atomically); one older than BUILD_WAIT_MS is a dead builder's. */
function lock(entry) {
  const path = lockOf(entry);
  try {
    mkdirSync(path);
    return true;
  } catch {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat && Date.now() - stat.mtimeMs > BUILD_WAIT_MS) rmSync(path, { recursive: true, force: true });
    return false;
  }
}

/**
 * The build of `entry` when every file it was made from is as it was then: its URL, or false when that build
 * failed (nothing changed since, and not long ago: the sources run under tsx without building at every start; a
 * file it did not find may have been added since, so it is tried again after RETRY_FAILED_BUILD_MS).
 */
function current(entry) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestOf(entry), 'utf8'));
  } catch {
    return undefined;
  }
  if (manifest.entry !== entry) return undefined;
  for (const [path, size, mtimeMs] of manifest.inputs) {
    const stat = statSync(join(ROOT, path), { throwIfNoEntry: false });
    if (!stat || stat.size !== size || stat.mtimeMs !== mtimeMs) return undefined;
  }
  if (manifest.failedAtMs !== undefined)
    return Date.now() - manifest.failedAtMs < RETRY_FAILED_BUILD_MS ? false : undefined;
  const output = join(CACHE, manifest.dir, manifest.output);
  return statSync(output, { throwIfNoEntry: false }) ? pathToFileURL(output).href : undefined;
}

async function build(entry) {
  const esbuild = await import('esbuild');
  const inputs = [];
  /** A file's size and modification time before it is read: a change while building shows at the next start. */
  const stamp = (path) => {
    const stat = statSync(path);
    inputs.push([relative(ROOT, path), stat.size, stat.mtimeMs]);
  };
  for (const path of SETTINGS) stamp(join(ROOT, path));
  const dir = `build-${Date.now().toString(36)}-${process.pid}`;
  const output = 'main.js';
  const previous = currentDir(entry);
  const failed = await esbuild
    .build({
      absWorkingDir: ROOT,
      entryPoints: { main: join(ROOT, entry) },
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      outdir: join(CACHE, dir),
      sourcemap: 'linked',
      sourcesContent: false,
      logLevel: 'silent',
      define: { 'import.meta.url': SOURCE_URL },
      plugins: [
        {
          name: 'gpubroker-sources',
          setup(plugin) {
            // A package import stays an import unless the package is inlined.
            plugin.onResolve({ filter: /^[^./]/ }, (args) => {
              if (args.path.startsWith('node:')) return { path: args.path, external: true };
              const name = args.path.split('/', args.path.startsWith('@') ? 2 : 1).join('/');
              return INLINE.has(name) || SDK_NAMES.has(name)
                ? undefined
                : { path: args.path, external: true };
            });
            plugin.onLoad({ filter: /\.[cm]?[jt]s$|\.json$/ }, (args) => {
              const loader = LOADERS[extname(args.path)];
              // zod's namespace of its 60-odd locales (~500 KB) cannot be tree-shaken once split into chunks, so every
              // command (the agent, whose idle memory counts, too) would load it: only English ships, which
              // `z.locales.en` still names; nothing here sets another locale.
              if (ZOD_LOCALES.test(args.path)) {
                stamp(args.path);
                return { contents: 'export { default as en } from "./en.js";\n', loader: 'js' };
              }
              if (!loader) return undefined;
              stamp(args.path);
              const source = readFileSync(args.path, 'utf8');
              // Only `import.meta.url` is given its source place; anything else of import.meta would be the build's.
              if (/import\.meta(?!\.url\b)/.test(source.replaceAll(/\/\/.*|\/\*[\s\S]*?\*\//g, '')))
                throw new Error(`${args.path}: import.meta other than import.meta.url`);
              const url = source.includes('import.meta.url')
                ? `const ${SOURCE_URL} = ${JSON.stringify(pathToFileURL(args.path).href)};\n`
                : '';
              return { contents: loader === 'json' ? source : url + source, loader };
            });
          },
        },
      ],
    })
    .then(
      () => false,
      () => true,
    );
  const partial = `${manifestOf(entry)}.${process.pid}.partial`;
  writeFileSync(
    partial,
    JSON.stringify({ entry, dir, output, inputs, ...(failed ? { failedAtMs: Date.now() } : {}) }),
  );
  renameSync(partial, manifestOf(entry));
  if (failed) {
    rmSync(join(CACHE, dir), { recursive: true, force: true });
    return false;
  }
  // The build it replaces is dated now, so that a process that has just started from it keeps it a while.
  if (previous && previous !== dir) utimesSync(join(CACHE, previous), new Date(), new Date());
  removeOldBuilds();
  return pathToFileURL(join(CACHE, dir, output)).href;
}

function currentDir(entry) {
  try {
    return JSON.parse(readFileSync(manifestOf(entry), 'utf8')).dir;
  } catch {
    return undefined;
  }
}

/** Builds replaced more than KEEP_OLD_BUILDS_MS ago, and current in no checkout. */
function removeOldBuilds() {
  const names = readdirSync(CACHE);
  const current = new Set();
  for (const name of names.filter((n) => n.endsWith('.json')))
    try {
      current.add(JSON.parse(readFileSync(join(CACHE, name), 'utf8')).dir);
    } catch {
      // Being written: its build is newer than any removed here.
    }
  for (const name of names) {
    if (!name.startsWith('build-') || current.has(name)) continue;
    const path = join(CACHE, name);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat?.isDirectory() && Date.now() - stat.mtimeMs > KEEP_OLD_BUILDS_MS)
      rmSync(path, { recursive: true, force: true });
  }
}
