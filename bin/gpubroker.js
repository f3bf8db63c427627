#!/usr/bin/env node
// Thin launcher: runs the dispatcher (bin/gpubroker.ts) from its build, made fresh from the sources when they changed
// (bin/build-cache.js), else from the sources under the TypeScript loader (tsx).
import { freshBuild } from './build-cache.js';

const command = process.argv[2];
if (command === 'agent') {
  // An agent spends most of its life idle on a GPU machine: until its first container (agent/cli.ts turns it back
  // on), it runs without V8's optimizing compiler, whose compile zones stay in malloc's arenas and whose code is
  // megabytes of node's binary paged in. Measured idle RSS after 20 s: 56.4-59.7 -> 48.6-48.7 MiB (at 6 s: 57-61 ->
  // 52-53); `--optimize-for-size` and a young generation held at 1 MB saved little more and cost GC time. Left off
  // under load it would cost a map's inputs ~60 % more agent CPU, so it comes back with the work.
  const { setFlagsFromString } = await import('node:v8');
  setFlagsFromString('--no-opt');
}
// The agent's commands have an entry and a build of their own (bin/agent.ts says why).
const entry = command === 'agent' || command === 'agent-host' ? 'agent.ts' : 'gpubroker.ts';
// `run` and `deploy` load the user's module, which imports the SDK: both must share the sources' one copy.
const build =
  process.env.GPUBROKER_BUILD !== '0' && command !== 'run' && command !== 'deploy'
    ? await freshBuild(`bin/${entry}`)
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
  await import(`./${entry}`);
}
