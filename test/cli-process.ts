/** Test helpers: the real `gpubroker` CLI as a child process, waited on until it prints the URL it listens on. */
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
