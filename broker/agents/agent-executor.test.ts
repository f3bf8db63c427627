/** The broker's AgentExecutor against a fake hub: what becomes of inputs whose agent was lost. */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import {
  ContainerExitedError,
  type ContainerSpec,
  InputNotStartedError,
} from '../../runtime/executor/executor.ts';
import { AgentExecutor } from './agent-executor.ts';
import type { AgentHub, ReportSink } from './agent-hub.ts';

/** The hub as a container sees it: orders go nowhere, the test plays the agent through the sink. */
function fakeHub() {
  const sinks = new Map<string, ReportSink>();
  const hub = {
    trackContainer: (containerId: string, sink: ReportSink) => sinks.set(containerId, sink),
    untrackContainer: (containerId: string) => sinks.delete(containerId),
    send: () => true,
    present: () => true,
  };
  return { hub: hub as unknown as AgentHub, sinks };
}

const spec = (concurrency: number): ContainerSpec => ({
  containerId: 'ctr_1',
  tenantId: 'tenant',
  app: 'demo',
  functionName: 'square',
  bundleId: 'tenant/sha',
  bundlePath: '/bundles/sha.mjs',
  instanceId: 'i-1',
  gpuIndices: [0],
  env: {},
  concurrency,
  cpu: 1,
  memoryMiB: 4096,
  network: 'egress',
});

describe('AgentExecutor', () => {
  it('takes the inputs past the first `concurrency` sent to a lost agent for never started', async () => {
    const clock = new VirtualClock(1_000);
    const { hub, sinks } = fakeHub();
    const executor = new AgentExecutor(hub, clock);
    expect(executor.queuesInputs).toBe(true);
    const container = executor.start(spec(2));
    sinks.get('ctr_1')?.report({ type: 'ready', containerId: 'ctr_1' });
    await container.ready;
    const inputs = ['a', 'b', 'c', 'd'].map((x) => container.invoke(`call_${x}`, [x]).catch((e: Error) => e));
    sinks.get('ctr_1')?.lost('the agent was lost', 1_000);
    const errors = await Promise.all(inputs);
    expect(errors.map((e) => (e as Error).constructor)).toEqual([
      ContainerExitedError,
      ContainerExitedError,
      InputNotStartedError,
      InputNotStartedError,
    ]);
  });
});
