#!/usr/bin/env node
// Thin launcher: runs the dispatcher (bin/gpubroker.ts) from its build, made fresh from the sources when they changed
// (bin/build-cache.js), else from the sources under the TypeScript loader (tsx).
import { freshBuild } from './build-cache.js';

const command = process.argv[2];
// `run` and `deploy` load the user's module, which imports the SDK: both must share the sources' one copy.
const build =
  process.env.GPUBROKER_BUILD !== '0' && command !== 'run' && command !== 'deploy'
    ? await freshBuild()
    : undefined;
if (build) {
  if (process.env.GPUBROKER_LOG === 'debug') process.setSourceMapsEnabled(true);
  // A TypeScript module the user names (a scenario) registers the loader first (lib/import-module.ts).
  globalThis[Symbol.for('gpubroker.registerTypeScript')] = async () =>
    (await import('tsx/esm/api')).register();
  await import(build);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./gpubroker.ts');
}
