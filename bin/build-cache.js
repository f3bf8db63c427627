/**
 * The command line's build, kept fresh against its sources: bin/gpubroker.ts and every file of this repository it
 * imports, bundled by esbuild into a few ES modules (one per command, and shared chunks) under
 * `node_modules/.cache/gpubroker/`. Packages stay imports, resolved from node_modules as before. A start then loads
 * those files with Node's own loader instead of ~450 modules through tsx's loader hooks, which cost more than a
 * second of every `serve` start (measured: importing the server 1.9 s under tsx, 0.6 s from the build).
 *
 * Never stale: each start compares the size and modification time of every file the build was made from (and of
 * tsconfig.json, esbuild and this file), ~200 stats; any difference makes it again (about a second) before it runs.
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
/** One per checkout: node_modules may be shared (a link) by work trees of other sources. */
const MANIFEST = join(CACHE, `build-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}.json`);
/** Besides the bundled files: what else decides the build's output. */
const SETTINGS = ['tsconfig.json', 'node_modules/esbuild/package.json', 'bin/build-cache.js'];
/** A replaced build is removed this long after: a process that started from it has loaded what it needs by then. */
const KEEP_OLD_BUILDS_MS = 60 * 60 * 1000;
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
    return current(entry) ?? (await build(entry));
  } catch {
    return undefined;
  }
}

/** The build of `entry` when every file it was made from is as it was then. */
function current(entry) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(MANIFEST, 'utf8'));
  } catch {
    return undefined;
  }
  if (manifest.entry !== entry) return undefined;
  for (const [path, size, mtimeMs] of manifest.inputs) {
    const stat = statSync(join(ROOT, path), { throwIfNoEntry: false });
    if (!stat || stat.size !== size || stat.mtimeMs !== mtimeMs) return undefined;
  }
  return pathToFileURL(join(CACHE, manifest.dir, manifest.output)).href;
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
  mkdirSync(CACHE, { recursive: true });
  await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { gpubroker: join(ROOT, entry) },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    outdir: join(CACHE, dir),
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'silent',
    define: { 'import.meta.url': SOURCE_URL },
    plugins: [
      {
        name: 'gpubroker-sources',
        setup(plugin) {
          plugin.onLoad({ filter: /\.[cm]?[jt]s$|\.json$/ }, (args) => {
            const loader = LOADERS[extname(args.path)];
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
  });
  const output = 'gpubroker.js';
  const previous = currentDir();
  const partial = `${MANIFEST}.${process.pid}.partial`;
  writeFileSync(partial, JSON.stringify({ entry, dir, output, inputs }));
  renameSync(partial, MANIFEST);
  // The build it replaces is dated now, so that a process that has just started from it keeps it a while.
  if (previous && previous !== dir) utimesSync(join(CACHE, previous), new Date(), new Date());
  removeOldBuilds(dir);
  return pathToFileURL(join(CACHE, dir, output)).href;
}

function currentDir() {
  try {
    return JSON.parse(readFileSync(MANIFEST, 'utf8')).dir;
  } catch {
    return undefined;
  }
}

/** Builds replaced more than KEEP_OLD_BUILDS_MS ago. */
function removeOldBuilds(keep) {
  for (const name of readdirSync(CACHE)) {
    if (!name.startsWith('build-') || name === keep) continue;
    const path = join(CACHE, name);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat?.isDirectory() && Date.now() - stat.mtimeMs > KEEP_OLD_BUILDS_MS)
      rmSync(path, { recursive: true, force: true });
  }
}
