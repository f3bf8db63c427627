/**
 * Agents for simulated instances. A simulated cloud boots no machine that could run `gpubroker agent`, so the
 * broker starts one agent host process beside itself (`agent/host.ts`) with a join token of its own, and plays
 * the part of the instances' start-up scripts: when a simulated instance is running it tells the host to join it
 * (with the GPUs the instance has), when it ends, to leave it. The containers then run through the agent protocol
 * exactly as on a real machine: the broker process starts none itself.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { HostOrder } from '../../agent/host.ts';
import { runBelowThisProcess } from '../../lib/priority.ts';
import type { Fleet } from '../fleet.ts';
import type { AgentRegistry } from './agent-registry.ts';

const CLI = fileURLToPath(new URL('../../bin/gpubroker.js', import.meta.url));

export interface LocalAgentHostOptions {
  readonly brokerUrl: string;
  readonly fleet: Fleet;
  readonly registry: AgentRegistry;
  /** Vendors whose instances are simulated here (the host joins only theirs). */
  readonly vendors: ReadonlySet<string>;
  /** The host's containers and bundle cache live under `<stateDir>/agent-host`. */
  readonly stateDir: string;
  readonly logger: Logger;
  /** How the host runs containers (`--isolation`); default none. */
  readonly isolation?: 'bubblewrap' | 'none';
}

export class LocalAgentHost {
  private child: ChildProcess | undefined;
  private joinTokenId: string | undefined;
  private readonly joined = new Set<string>();
  private unsubscribe: (() => void) | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly o: LocalAgentHostOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    const { token, id } = await this.o.registry.createJoinToken({ createdBy: 'local agent host' });
    this.joinTokenId = id;
    const child = spawn(
      process.execPath,
      [
        CLI,
        'agent-host',
        '--broker',
        this.o.brokerUrl,
        '--state-dir',
        join(this.o.stateDir, 'agent-host'),
        '--isolation',
        this.o.isolation ?? 'none',
      ],
      {
        // The token by environment, never on a command line that `ps` shows.
        env: { ...process.env, GPUBROKER_JOIN_TOKEN: token },
        stdio: ['pipe', 'inherit', 'inherit'],
      },
    );
    this.child = child;
    // Below the broker: its start-up and its containers' never delay the broker's own work (meter checkpoints).
    runBelowThisProcess(child.pid, 5);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.o.logger.error({ code, signal }, 'the local agent host exited');
    });
    child.stdin?.on('error', () => undefined);
    this.unsubscribe = this.o.fleet.onFreed(() => this.sync());
    this.sync();
  }

  /** Joins running simulated instances not joined yet; leaves those that ended. */
  private sync(): void {
    const running = new Map<string, { gpu: string; gpus: number }>();
    for (const instance of this.o.fleet.all())
      if (instance.state === 'running' && this.o.vendors.has(instance.vendor))
        running.set(instance.id, { gpu: instance.gpu, gpus: instance.gpusPerInstance });
    for (const [instanceId, { gpu, gpus }] of running)
      if (!this.joined.has(instanceId)) {
        this.joined.add(instanceId);
        this.write({
          join: { instanceId, gpus: Array.from({ length: gpus }, (_, index) => ({ index, name: gpu })) },
        });
      }
    for (const instanceId of this.joined)
      if (!running.has(instanceId)) {
        this.joined.delete(instanceId);
        this.write({ leave: instanceId });
      }
  }

  private write(order: HostOrder): void {
    this.child?.stdin?.write(`${JSON.stringify(order)}\n`);
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.stdin?.end();
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(killer);
    }
    if (this.joinTokenId) await this.o.registry.revokeJoinToken(this.joinTokenId).catch(() => undefined);
  }
}
