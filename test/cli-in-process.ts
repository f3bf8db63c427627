/**
 * Test helper: the `gpubroker` command line run in this process (bin/cli.ts), with what it writes to stdout and
 * stderr captured and its exit status, as `runCli` (test/cli-process.ts) gives them for a child process, in
 * milliseconds instead of the ~2 s a child spends loading. Keep a few child-process tests per command family for
 * what only a process shows (the launcher, exit at once on a start-up failure).
 *
 * Command lines run one at a time: the exit status (`process.exitCode`), the environment and the working
 * directory are the process's. Writes are told apart by async context, so a server in this process (its logs)
 * writes where it always did while a command runs.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { format } from 'node:util';
import { runGpubroker } from '../bin/cli.ts';
import { COMMANDS } from '../bin/commands.ts';
import type { CliRun } from './cli-process.ts';

interface Capture {
  stdout: string;
  stderr: string;
}

const capture = new AsyncLocalStorage<Capture>();
let installed = false;

/** Routes `stream.write` to the running command's capture, if the caller is one. */
function divert(stream: NodeJS.WriteStream, key: keyof Capture): void {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const into = capture.getStore();
    if (!into) return write(chunk, ...rest);
    into[key] += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    const done = rest.find((arg) => typeof arg === 'function') as ((error?: Error) => void) | undefined;
    if (done) queueMicrotask(() => done());
    return true;
  }) as typeof stream.write;
}

/** The same for `console` (a module that `gpubroker run` loads prints with it), which the test runner replaces. */
function divertConsole(): void {
  const methods = {
    log: 'stdout',
    info: 'stdout',
    debug: 'stdout',
    error: 'stderr',
    warn: 'stderr',
  } as const;
  for (const [method, key] of Object.entries(methods) as [keyof typeof methods, keyof Capture][]) {
    const original = console[method].bind(console);
    console[method] = (...args: unknown[]) => {
      const into = capture.getStore();
      if (into) into[key] += `${format(...args)}\n`;
      else original(...args);
    };
  }
}

let queue: Promise<unknown> = Promise.resolve();

export interface InProcessOptions {
  /** Set (a string) or unset (undefined) for the run, e.g. `{ GPUBROKER_URL: url, GPUBROKER_TOKEN: undefined }`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Where the command runs (relative files, `.gpubroker/operator-token`); default: here. */
  readonly cwd?: string;
}

/** Runs `gpubroker ARGS…` in this process and resolves with its exit status and what it wrote. */
export function runCliInProcess(args: readonly string[], options: InProcessOptions = {}): Promise<CliRun> {
  if (!installed) {
    divert(process.stdout, 'stdout');
    divert(process.stderr, 'stderr');
    divertConsole();
    installed = true;
  }
  const run = queue.then(() => runAlone(args, options));
  queue = run.catch(() => undefined);
  return run;
}

async function runAlone(args: readonly string[], options: InProcessOptions): Promise<CliRun> {
  const savedEnv = new Map<string, string | undefined>();
  for (const [name, value] of Object.entries(options.env ?? {})) {
    savedEnv.set(name, process.env[name]);
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  const savedCwd = process.cwd();
  const savedExitCode = process.exitCode;
  if (options.cwd) process.chdir(options.cwd);
  process.exitCode = undefined;
  const output: Capture = { stdout: '', stderr: '' };
  try {
    const outcome = await capture.run(output, () => runGpubroker(COMMANDS, args));
    const code = outcome.code ?? (typeof process.exitCode === 'number' ? process.exitCode : 0);
    return { code, stdout: output.stdout, stderr: output.stderr };
  } finally {
    process.exitCode = savedExitCode;
    process.chdir(savedCwd);
    for (const [name, value] of savedEnv) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}
