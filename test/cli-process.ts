/**
 * Test helpers: the real `gpubroker` CLI as a child process, either run to its end (`runCli`) or, for servers,
 * waited on until it prints the URL it listens on (`startCli`, `stopCli`) or until it first answers
 * (`spawnUntilAnswer`, for restart times).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';

const BIN = new URL('../bin/gpubroker.js', import.meta.url).pathname;

export interface CliProcess {
  readonly child: ChildProcess;
  readonly url: string;
  output(): string;
}

/** Starts `gpubroker ARGS…` and resolves with the first `listening on URL` it prints. */
export function startCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliProcess> {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk;
      const url = /listening on (http:\/\/\S+)/.exec(output)?.[1];
      if (url) resolve({ child, url, output: () => output });
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) =>
      reject(new Error(`gpubroker ${args[0]} exited (${code ?? signal}): ${output}`)),
    );
  });
}

/** Sends `signal` and resolves with the exit code (null when killed by the signal). */
export function stopCli(process: CliProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  const { child } = process;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill(signal);
  });
}

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `gpubroker ARGS…` to its end and resolves with its exit code and output. `env` is the whole environment
 * (default: this process's); `cwd` where it runs (default: here).
 */
export function runCli(
  args: readonly string[],
  options: { readonly env?: NodeJS.ProcessEnv; readonly cwd?: string } = {},
): Promise<CliRun> {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  // 'close', not 'exit': both pipes are drained by then.
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface AnsweringProcess extends CliProcess {
  /** `Date.now()` when the process was spawned and when `probe` first answered 2xx. */
  readonly spawnedAtMs: number;
  readonly answeredAtMs: number;
}

export interface StartingProcess extends CliProcess {
  readonly spawnedAtMs: number;
  /** Set once `probe` answered 2xx. */
  readonly answeredAtMs: number | undefined;
  /** Resolves once `probe` answers 2xx; rejects if the process exits first or the time runs out. */
  readonly answered: Promise<AnsweringProcess>;
}

export interface SpawnOptions {
  /** Where the server will listen (its port is in ARGS). */
  readonly url: string;
  /** Default `/healthz`. */
  readonly probe?: string;
  /** Another build's `bin/gpubroker.js`. */
  readonly bin?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Default 60 s. */
  readonly timeoutMs?: number;
}

/**
 * Spawns `gpubroker ARGS…` (a server) and polls `url + probe` until it answers 2xx: a server that answers 503
 * while it starts is not up yet. The process is at hand at once, to kill it while it starts.
 */
export function spawnServer(args: readonly string[], options: SpawnOptions): StartingProcess {
  const spawnedAtMs = Date.now();
  const child = spawn(process.execPath, [options.bin ?? BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let output = '';
  const onData = (chunk: Buffer) => {
    output += chunk;
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const timeoutMs = options.timeoutMs ?? 60_000;
  let answeredAtMs: number | undefined;
  const answered = (async (): Promise<AnsweringProcess> => {
    for (;;) {
      if (exited) throw new Error(`gpubroker ${args[0]} exited before answering: ${output}`);
      if (Date.now() > spawnedAtMs + timeoutMs) {
        child.kill('SIGKILL');
        throw new Error(`gpubroker ${args[0]} did not answer within ${timeoutMs} ms: ${output}`);
      }
      try {
        const response = await fetch(`${options.url}${options.probe ?? '/healthz'}`);
        await response.arrayBuffer();
        if (response.ok && !exited) {
          answeredAtMs = Date.now();
          return { child, url: options.url, output: () => output, spawnedAtMs, answeredAtMs };
        }
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  const starting: StartingProcess = {
    child,
    url: options.url,
    output: () => output,
    spawnedAtMs,
    get answeredAtMs() {
      return answeredAtMs;
    },
    answered,
  };
  // Whoever kills it while it starts need not hear that it did not answer.
  starting.answered.catch(() => undefined);
  return starting;
}

/** `spawnServer`, resolved once the server answers. */
export function spawnUntilAnswer(args: readonly string[], options: SpawnOptions): Promise<AnsweringProcess> {
  return spawnServer(args, options).answered;
}
