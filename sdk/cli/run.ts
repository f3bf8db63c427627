/**
 * `gpubroker run FILE.ts [--detach]` and `gpubroker deploy FILE.ts`: bundle a module with esbuild, upload the bundle
 * (content-addressed: unchanged code uploads nothing), deploy its app, and for `run` call its exported `main` here
 * while the functions run in containers, streaming their output prefixed by container id. When `main` ends the
 * ephemeral app stays warm until its containers' scale-down window has passed (then stops, unless the next run
 * deployed it again), so a second run of the same code starts warm; Ctrl-C stops it at once; `--detach` leaves it.
 * `deploy` keeps the app for `broker.functions.lookup` from anywhere.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { build } from 'esbuild';
import { ValidationError } from '../../lib/errors.ts';
import type { App } from '../app.ts';
import type { Broker } from '../broker-client.ts';
import { type ClientFlags, withClientOptions } from './client-flags.ts';
import { brokerClient, talkTo } from './client-options.ts';
import { ensureLayer } from './image-layer.ts';

const SDK_ENTRY = new URL('../index.ts', import.meta.url).pathname;

/**
 * Bundles `file` into one ES module (the SDK included) and returns its bytes and content id. An app imports the SDK
 * as `gpubroker` or `@gpubroker/sdk`; either is this command's own SDK, so the bundle's SDK matches the CLI's.
 */
export async function bundleModule(
  file: string,
  external: readonly string[] = [],
): Promise<{ code: Uint8Array; bundleId: string }> {
  const result = await build({
    // Packages of the functions' images are imported from the image's layer in the container, not bundled.
    external: external.flatMap((name) => [name, `${name}/*`]),
    entryPoints: [file],
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    write: false,
    logLevel: 'silent',
    alias: { gpubroker: SDK_ENTRY, '@gpubroker/sdk': SDK_ENTRY },
    // Node's own modules stay imports; ESM bundles need a `require` for CommonJS dependencies that use it.
    banner: {
      js: "import { createRequire as __gpbRequire } from 'node:module'; const require = __gpbRequire(import.meta.url);",
    },
  });
  const code = result.outputFiles[0]?.contents ?? new Uint8Array();
  return { code, bundleId: createHash('sha256').update(code).digest('hex') };
}

/** How long the log stream must be quiet after `main` ends before the run stops following it, and the most it waits. */
const LOG_QUIET_MS = 250;
const LOG_DRAIN_MS = 3_000;

/**
 * Follows the app's container logs (NDJSON) until `signal` aborts; each line is printed with its container id.
 * `lastLineAtMs` is when the last line came, so that the run can let the stream drain before it stops.
 */
async function followLogs(
  broker: Broker,
  app: string,
  signal: AbortSignal,
  seen: { lastLineAtMs: number },
): Promise<void> {
  // Lines that came together go out in one write per stream (a write per line was a system call per line).
  const out = { stdout: '', stderr: '' };
  let flushing = false;
  const flush = () => {
    flushing = false;
    if (out.stdout) process.stdout.write(out.stdout);
    if (out.stderr) process.stderr.write(out.stderr);
    out.stdout = '';
    out.stderr = '';
  };
  try {
    for await (const line of broker.apps.logs(app, { signal })) {
      seen.lastLineAtMs = Date.now();
      out[line.stream] += `[${line.containerId}] ${line.text}\n`;
      if (!flushing) {
        flushing = true;
        setImmediate(flush);
      }
    }
  } catch {
    // Aborted at the end of the run, or the broker went away: the run itself reports what matters.
  }
  flush();
}

async function loadApp(file: string): Promise<{ app: App; exports: Record<string, unknown> }> {
  const exports = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const apps = Object.values(exports).filter(
    (v): v is App =>
      typeof v === 'object' && v !== null && 'manifest' in v && 'nameFrom' in v && 'connect' in v,
  );
  if (apps.length !== 1)
    throw new ValidationError('FILE', `${file} must export exactly one App (found ${apps.length})`);
  const app = apps[0] as App;
  app.nameFrom(exports);
  return { app, exports };
}

/** Bundles, uploads and deploys the module's app, and connects it to `broker`; returns the app and the module. */
export async function deployModule(broker: Broker, file: string, ephemeral: boolean) {
  const path = resolve(file);
  if (!existsSync(path)) throw new ValidationError('FILE', `${file} does not exist`);
  const { app, exports } = await loadApp(path);
  const functions = app.manifest();
  const external = new Set<string>();
  const say = (line: string) => process.stderr.write(`${line}\n`);
  for (const [name, options] of Object.entries(functions)) {
    const spec = options.image;
    if (!spec?.npm?.length) continue;
    const layer = await ensureLayer(broker, { ...spec, npm: spec.npm }, say, `functions.${name}.image.npm`);
    for (const pkg of layer.packages) external.add(pkg);
    if (layer.uploadedBytes !== undefined)
      say(`image layer ${layer.id.slice(0, 12)}: built, ${layer.uploadedBytes} bytes uploaded`);
    functions[name] = { ...options, image: { ...spec, layer: layer.id } };
  }
  const { code, bundleId } = await bundleModule(path, [...external]);
  const { uploaded } = await broker.bundles.upload(code);
  await broker.apps.deploy(app.name, { bundleId, functions, ephemeral });
  app.connect(broker);
  process.stderr.write(
    `app ${app.name}: ${Object.keys(functions).join(', ')} (bundle ${bundleId.slice(0, 12)}, ${uploaded ? `${code.byteLength} bytes uploaded` : 'unchanged'})\n`,
  );
  return { app, exports };
}

/**
 * Calls done and containers while `main` runs: a progress bar on a terminal, a line every 10 s otherwise (logs,
 * CI). While no container is up yet the broker is still buying capacity, and it says so.
 */
function showProgress(broker: Broker, app: string): { stop(): void } {
  const tty = process.stderr.isTTY === true;
  const bar = tty
    ? new SingleBar(
        { format: '  {bar} {value}/{total} calls | {containers}', hideCursor: true, clearOnComplete: false },
        Presets.shades_classic,
      )
    : undefined;
  let started = false;
  let lastLine = 0;
  const poll = setInterval(() => {
    void broker.apps
      .get(app)
      .then((s) => {
        const containers =
          s.containers.total === 0
            ? 'waiting for GPUs (the broker is provisioning)'
            : `${s.containers.total} containers (${s.containers.ready} ready)`;
        if (bar) {
          if (!started) bar.start(s.calls.total, 0, { containers });
          started = true;
          bar.setTotal(s.calls.total);
          bar.update(s.calls.done, { containers });
        } else if (Date.now() - lastLine >= 10_000) {
          lastLine = Date.now();
          process.stderr.write(`  ${s.calls.done}/${s.calls.total} calls done, ${containers}\n`);
        }
      })
      .catch(() => {});
  }, 1000);
  return {
    stop() {
      clearInterval(poll);
      if (started) bar?.stop();
    },
  };
}

export function registerRunCommands(program: Command): void {
  withClientOptions(
    program
      .command('run')
      .description(
        'bundle FILE, deploy its app for this run and call its exported main(); functions run remotely',
      )
      .argument('<file>', 'a TypeScript or JavaScript module exporting an App (and main)')
      .option('--detach', 'leave the app running when this command ends or is interrupted'),
  ).action(async (file: string, flags: ClientFlags & { detach?: boolean }) => {
    const broker = brokerClient(flags);
    await talkTo(broker, async () => {
      const { app, exports } = await deployModule(broker, file, !flags.detach);
      const stopLogs = new AbortController();
      const seen = { lastLineAtMs: Date.now() };
      const logs = followLogs(broker, app.name, stopLogs.signal, seen);
      const progress = showProgress(broker, app.name);
      // At the end the app stays warm until its containers' scale-down window has passed, so that running the same
      // code again reuses them; interrupted, it stops at once.
      const stop = async (keepWarm: boolean) => {
        progress.stop();
        // The last lines a container wrote may still be on their way (they travel apart from the results).
        if (keepWarm) {
          const until = Date.now() + LOG_DRAIN_MS;
          while (Date.now() - seen.lastLineAtMs < LOG_QUIET_MS && Date.now() < until)
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
        stopLogs.abort();
        await logs;
        if (flags.detach) return;
        const answer = await broker.apps.stop(app.name, { keepWarm }).catch(() => undefined);
        if (answer?.stopsAtMs !== undefined)
          process.stderr.write(
            `app ${app.name}: containers kept warm for ${Math.round((answer.stopsAtMs - Date.now()) / 1000)} s (the next run of this code reuses them)\n`,
          );
      };
      const interrupted = () => void stop(false).then(() => process.exit(130));
      process.once('SIGINT', interrupted);
      try {
        const main = exports.main;
        if (typeof main !== 'function') throw new ValidationError('FILE', `${file} exports no main() to run`);
        await (main as () => unknown)();
      } finally {
        process.off('SIGINT', interrupted);
        await stop(true);
      }
    });
  });

  withClientOptions(
    program
      .command('deploy')
      .description(
        'bundle FILE and deploy its app to stay: call it from anywhere with broker.functions.lookup',
      )
      .argument('<file>', 'a TypeScript or JavaScript module exporting an App'),
  ).action(async (file: string, flags: ClientFlags) => {
    const broker = brokerClient(flags);
    await talkTo(broker, async () => {
      await deployModule(broker, file, false);
    });
  });
}
