/**
 * `lease exec` on the agent's side: the tenant's command with exactly the leased GPUs visible. On an isolating agent
 * it runs in the same sandbox as a container (`executor/sandbox/bubblewrap.ts`): its own namespaces and user, only
 * the leased GPUs' device nodes, a read-only root and a scratch directory, and a cgroup holding the lease's share
 * of the machine (CPU and memory in proportion to its GPUs of the machine's). A lease is a tenant's, the machine is
 * shared: nothing of the agent or the host is reachable from a command either.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, mkdirSync, rmSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';
import { type BubblewrapSandbox, SANDBOX_PATHS, type SandboxLaunch } from './executor/sandbox/bubblewrap.ts';

export interface ExecOrder {
  readonly execId: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly gpuIndices: readonly number[];
  readonly env: Readonly<Record<string, string>>;
}

export interface ExecSetting {
  readonly sandbox?: BubblewrapSandbox;
  /** Where sandboxed commands get their scratch directories. */
  readonly workRoot: string;
  /** The machine's GPU count, for the lease's share of CPU and memory. */
  readonly machineGpus: number;
}

export interface RunningExec {
  readonly child: ChildProcess;
  /** Signals the command (every process of its sandbox). */
  kill(signal: NodeJS.Signals): void;
  /** Removes its sandbox and scratch directory, once it has exited. */
  cleanUp(): Promise<void>;
}

/** Starts the command; throws (synchronously) if it cannot be set up. */
export function startExec(order: ExecOrder, setting: ExecSetting): RunningExec {
  const env = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: setting.sandbox ? SANDBOX_PATHS.scratch : (process.env.HOME ?? '/'),
    ...order.env,
    CUDA_VISIBLE_DEVICES: order.gpuIndices.join(','),
  };
  if (!setting.sandbox) {
    const child = spawn(order.command, [...order.args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    return { child, kill: (signal) => child.kill(signal), cleanUp: async () => {} };
  }
  const id = `exec_${order.execId.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
  const workDir = join(setting.workRoot, id);
  mkdirSync(setting.workRoot, { recursive: true });
  mkdirSync(workDir, { mode: 0o700 });
  const share = Math.min(1, order.gpuIndices.length / Math.max(1, setting.machineGpus));
  let launch: SandboxLaunch;
  try {
    launch = setting.sandbox.launch({
      id,
      gpuIndices: order.gpuIndices,
      cpu: Math.max(1, Math.floor(availableParallelism() * share)),
      memoryMiB: Math.max(256, Math.floor((totalmem() / 1024 / 1024) * share)),
      network: 'egress',
      workDir,
      env,
      argv: [order.command, ...order.args],
    });
    chownSync(workDir, launch.uid, launch.uid);
  } catch (error) {
    rmSync(workDir, { recursive: true, force: true });
    throw error;
  }
  const child = spawn(launch.command, launch.args, {
    cwd: workDir,
    env: launch.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  return {
    child,
    kill: (signal) => launch.cgroup.signalAll(signal),
    cleanUp: async () => {
      await launch.release().catch(() => undefined);
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}
