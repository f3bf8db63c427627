/**
 * `gpubroker agent-host`: one process that is the agent of many simulated instances. The embedded default's
 * clouds are simulated, so nothing boots a machine that could run an agent; instead the broker starts one agent
 * host beside it and tells it, one JSON line on stdin at a time, which instances came up and which went:
 *
 *   {"join": {"instanceId": "sim-aws-…", "gpus": [{"index": 0, "name": "H100"}, …]}}
 *   {"leave": "sim-aws-…"}
 *
 * For each joined instance the host runs a full `Agent`: its own WebSocket, hello, credential, heartbeats and
 * containers, exactly the protocol a real machine speaks; only the executor (child processes on this machine) and
 * the bundle cache are shared. When stdin ends (the broker stopped or died), the host stops every container and
 * exits, so a crashed broker leaves no agents behind to fight over its instances after the restart.
 */

import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import * as z from 'zod/mini';
import { Agent } from './agent.ts';
import { BundleCache } from './bundle-cache.ts';
import { LocalExecutor } from './executor/local-executor.ts';
import type { BubblewrapSandbox } from './executor/sandbox/bubblewrap.ts';
import { virtualGpuSource } from './gpus.ts';
import { LayerCache } from './layer-cache.ts';
import { gpuReportSchema } from './protocol.ts';
import { StartGate } from './start-gate.ts';

const orderSchema = z.union([
  z.object({
    join: z.object({ instanceId: z.string().check(z.minLength(1)), gpus: z.array(gpuReportSchema) }),
  }),
  z.object({ leave: z.string().check(z.minLength(1)) }),
]);
export type HostOrder = z.infer<typeof orderSchema>;

export interface AgentHostOptions {
  readonly brokerUrl: string;
  readonly token: string;
  readonly stateDir: string;
  readonly logger: Logger;
  /** Containers run isolated in it; absent: plain processes. */
  readonly sandbox?: BubblewrapSandbox;
}

export class AgentHost {
  private readonly executor: LocalExecutor;
  private readonly bundles: BundleCache;
  private readonly layers: LayerCache;
  private readonly agents = new Map<string, Agent>();
  /** One machine: cold starts are bounded across all its simulated instances together. */
  private readonly startGate = new StartGate(Math.max(2, availableParallelism()));

  constructor(private readonly o: AgentHostOptions) {
    this.executor = new LocalExecutor({
      workRoot: join(o.stateDir, 'containers'),
      ...(o.sandbox ? { sandbox: o.sandbox } : {}),
    });
    this.bundles = new BundleCache(join(o.stateDir, 'bundles'));
    this.layers = new LayerCache(join(o.stateDir, 'layers'));
  }

  apply(order: HostOrder): void {
    if ('join' in order) {
      const { instanceId, gpus } = order.join;
      if (this.agents.has(instanceId)) return;
      const agent = new Agent({
        brokerUrl: this.o.brokerUrl,
        token: this.o.token,
        instanceId,
        hostname: `simulated ${instanceId}`,
        // Every simulated instance is this machine.
        addresses: ['127.0.0.1'],
        gpus: virtualGpuSource(gpus),
        executor: this.executor,
        bundles: this.bundles,
        layers: this.layers,
        ...(this.o.sandbox ? { sandbox: this.o.sandbox } : {}),
        execRoot: join(this.o.stateDir, 'execs'),
        startGate: this.startGate,
        logger: this.o.logger.child({ instanceId }),
        onFatal: (message) => {
          this.o.logger.error({ instanceId, message }, 'agent refused');
          this.agents.delete(instanceId);
        },
      });
      this.agents.set(instanceId, agent);
      void agent.start();
    } else {
      const agent = this.agents.get(order.leave);
      this.agents.delete(order.leave);
      void agent?.close();
    }
  }

  /** Reads orders from `input` until it ends; resolves then, once every agent has stopped. */
  async serve(input: NodeJS.ReadableStream): Promise<void> {
    for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
      if (line.trim() === '') continue;
      try {
        this.apply(orderSchema.parse(JSON.parse(line)));
      } catch (error) {
        this.o.logger.error({ err: error, line: line.slice(0, 200) }, 'unreadable order');
      }
    }
    await this.close();
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((agent) => agent.close()));
    this.agents.clear();
    await this.executor.close();
  }
}
