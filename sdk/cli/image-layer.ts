/**
 * The layer of an image's npm packages, built where `gpubroker run|deploy` runs: `npm install` into a scratch
 * directory, `node_modules` packed as a gzip tarball and streamed to the broker (`PUT /v1/layers/{id}`). The id is
 * the hash of the recipe (base, package specs, platform, Node's major version, and the bytes of any local package),
 * so the broker is asked first and an unchanged image is never built again, on any machine.
 *
 * Agents never reach a registry: they fetch the layer from the broker. Packages are installed for this machine's
 * platform, which must be the agents' (linux-x64 on both in practice); the recipe names it.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { c as createTar, t as listTar } from 'tar';
import { ValidationError } from '../../lib/errors.ts';
import type { Broker } from '../index.ts';

export interface ImageRecipe {
  readonly base: 'node20';
  readonly npm: readonly string[];
}

export interface LayerOutcome {
  readonly id: string;
  /** The top-level package names: bare imports of these stay out of the bundle. */
  readonly packages: string[];
  /** Bytes uploaded, when it was built now; undefined when the broker had it. */
  readonly uploadedBytes?: number;
}

/** Whether a package spec names something on this disk (a directory or a tarball) rather than the registry. */
function isLocal(spec: string): boolean {
  return (
    spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('file:') || /\.(tgz|tar\.gz)$/.test(spec)
  );
}

function localPath(spec: string): string {
  const path = spec.startsWith('file:') ? spec.slice('file:'.length) : spec;
  return isAbsolute(path) ? path : resolve(path);
}

/** The name a spec installs under: `sharp@0.33` → sharp, `@img/x@^1` → @img/x, a local package → its name. */
export async function packageNameOf(spec: string, field = 'image.npm'): Promise<string> {
  if (isLocal(spec)) {
    const path = localPath(spec);
    if (!existsSync(path)) throw new ValidationError(field, `${spec}: no such file or directory`);
    if (statSync(path).isDirectory())
      return nameIn(readFileSync(join(path, 'package.json'), 'utf8'), spec, field);
    let manifest: string | undefined;
    await listTar({
      file: path,
      onReadEntry: (entry) => {
        if (/^[^/]+\/package\.json$/.test(entry.path) && manifest === undefined) {
          const chunks: Buffer[] = [];
          entry.on('data', (chunk: Buffer) => chunks.push(chunk));
          entry.on('end', () => {
            manifest = Buffer.concat(chunks).toString('utf8');
          });
        } else entry.resume();
      },
    });
    if (manifest === undefined) throw new ValidationError(field, `${spec}: no package.json in the tarball`);
    return nameIn(manifest, spec, field);
  }
  const match = /^((?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*)(?:@.*)?$/i.exec(spec);
  if (!match || /[:#]/.test(spec.replace(/@npm:/, '@')))
    throw new ValidationError(
      field,
      `${spec}: give a registry package as name@version, or a local directory or .tgz`,
    );
  return match[1] as string;
}

function nameIn(manifest: string, spec: string, field: string): string {
  try {
    const name = (JSON.parse(manifest) as { name?: unknown }).name;
    if (typeof name === 'string' && name !== '') return name;
  } catch {
    // Reported below.
  }
  throw new ValidationError(field, `${spec}: its package.json has no name`);
}

/** The recipe's hash: what the layer is named by. Local packages count by their bytes. */
export function layerIdOf(recipe: ImageRecipe): string {
  const npm = recipe.npm.map((spec) => {
    if (!isLocal(spec)) return spec;
    const path = localPath(spec);
    const content = statSync(path).isDirectory()
      ? readFileSync(join(path, 'package.json'))
      : readFileSync(path);
    return `${spec}#sha256:${createHash('sha256').update(content).digest('hex')}`;
  });
  const recipeText = JSON.stringify({
    base: recipe.base,
    npm,
    platform: `${process.platform}-${process.arch}`,
    node: process.versions.node.split('.')[0],
  });
  return createHash('sha256').update(recipeText).digest('hex');
}

/**
 * Makes sure the broker has the layer of `recipe`: asks for it by id, and builds and uploads it if it has not.
 * `say` gets one line of progress.
 */
export async function ensureLayer(
  broker: Broker,
  recipe: ImageRecipe,
  say: (line: string) => void,
  field = 'image.npm',
): Promise<LayerOutcome> {
  const packages = await Promise.all(recipe.npm.map((spec) => packageNameOf(spec, field)));
  const id = layerIdOf(recipe);
  if (await broker.layers.get(id)) return { id, packages };
  const dir = mkdtempSync(join(tmpdir(), 'gpubroker-layer-'));
  try {
    say(`image layer ${id.slice(0, 12)}: npm install ${recipe.npm.join(' ')}`);
    const tarball = await buildLayer(recipe, dir);
    const layer = await broker.layers.upload(id, Readable.toWeb(createReadStream(tarball)) as ReadableStream);
    return { id, packages, uploadedBytes: layer.bytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Installs the recipe's packages into `dir` and packs its node_modules; returns the tarball's path. */
export async function buildLayer(recipe: ImageRecipe, dir: string): Promise<string> {
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify({ name: 'gpubroker-image-layer', private: true })}\n`,
  );
  await npmInstall(
    dir,
    recipe.npm.map((spec) => (isLocal(spec) ? localPath(spec) : spec)),
  );
  const tarball = join(dir, 'layer.tgz');
  await createTar({ gzip: true, cwd: dir, portable: true, file: tarball }, ['node_modules']);
  return tarball;
}

function npmInstall(dir: string, specs: readonly string[]): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      'npm',
      // --prefer-offline: what npm's cache has is not fetched again.
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--no-package-lock',
        '--omit=dev',
        '--prefer-offline',
        '--loglevel=error',
        ...specs,
      ],
      { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', (error) =>
      reject(new ValidationError('image.npm', `cannot run npm: ${error.message}`)),
    );
    child.on('exit', (code) => {
      if (code === 0) resolvePromise();
      else
        reject(
          new ValidationError(
            'image.npm',
            `npm install ${specs.join(' ')} failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' ')}`,
          ),
        );
    });
  });
}
