/**
 * Test helpers: the real `gpubroker` CLI as a child process, either run to its end (`runCli`) or, for servers,
 * waited on until it prints the URL it listens on (`startCli`, `stopCli`).
 */
import { type ChildProcess, spawn } from 'node:child_process';

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
