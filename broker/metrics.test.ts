/**
 * `/metrics` as Prometheus reads it: a real broker (PGlite, simulated AWS with fast boots) with a lease served, its
 * scrape checked by `promtool check metrics` (Debian's prometheus package, which `.ci/run` installs: under CI a
 * missing promtool fails the test) and by what it says.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InsufficientCapacityError, ProviderUnavailableError } from '../providers/provider-errors.ts';
import { simScenario } from '../providers/sim/scenario.ts';
import { Broker } from '../sdk/index.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY } from '../test/fast-aws.ts';
import { BrokerMetrics } from './metrics.ts';
import { type RunningServer, startServer } from './server.ts';

const promtool = spawnSync('promtool', ['--version']).status === 0;
if (!promtool && process.env.CI)
  throw new Error('the metrics test needs promtool under CI (apt-get install prometheus)');

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-metrics-'));
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({
    port: 0,
    dataDir: join(dir, 'data'),
    seed: 3,
    scenario: simScenario(FAST_AWS_SCENARIO as never),
    agentHost: false,
  });
  await server.broker.setPolicy(FAST_POLICY, 'test');
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The value of a sample, by its name and labels as printed. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('/metrics', () => {
  it('passes promtool, in seconds and _total, with buffer target against ready, leases per tenant and histograms', async () => {
    const broker = new Broker({ url: server.url, token: server.operatorToken as string });
    const lease = await broker.gpus.request({ gpu: 'H100', count: 2 }, { timeoutMs: 60_000 });
    const response = await fetch(`${server.url}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    if (promtool) {
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(`${check.stdout}${check.stderr}`.trim()).toBe('');
      expect(check.status).toBe(0);
    }
    expect(text).toMatch(/^gpubroker_leases\{tenant="tenant_\w+",status="ready"\} 1$/m);
    expect(sample(text, 'gpubroker_lease_wait_seconds_count{gpu="H100"}')).toBe(1);
    expect(sample(text, 'gpubroker_tick_duration_seconds_count')).toBeGreaterThan(0);
    expect(sample(text, 'gpubroker_solve_duration_seconds_count')).toBeGreaterThan(0);
    // The policy holds 8 H100 warm: the target, and what is ready of it (the node's GPUs the lease left).
    expect(sample(text, 'gpubroker_buffer_target_gpus{gpu="H100"}')).toBeGreaterThanOrEqual(8);
    expect(sample(text, 'gpubroker_buffer_ready_gpus{gpu="H100"}')).toBeGreaterThanOrEqual(0);
    expect(text).toMatch(
      /^gpubroker_instances\{vendor="aws",region="us-east-1",gpu="H100",.*state="running"\} \d+$/m,
    );
    expect(sample(text, 'gpubroker_fleet_usd_per_hour{vendor="aws"}')).toBeGreaterThan(0);
    expect(sample(text, 'gpubroker_plan_usd_per_hour')).toBeGreaterThan(0);
    expect(text).toContain('# TYPE process_cpu_seconds_total counter');
    expect(text).not.toMatch(/_ms\b/);
    await lease.release();
  });

  it('counts provider errors by vendor and kind', async () => {
    const metrics = new BrokerMetrics({
      instances: () => [],
      readyBufferGpus: () => new Map(),
      bufferTargetGpus: () => new Map(),
      openLeases: () => [],
      callsInFlight: () => [{ tenantId: 'acme', status: 'pending', count: 3 }],
      lastTick: () => undefined,
    });
    metrics.providerError(
      'aws',
      new InsufficientCapacityError('aws', 'aws/p5', 60_000, 'no p5 in us-east-1a'),
    );
    metrics.providerError(
      'aws',
      new InsufficientCapacityError('aws', 'aws/p5', 60_000, 'no p5 in us-east-1b'),
    );
    metrics.providerError('gcp', new ProviderUnavailableError('gcp', undefined, 'timeout'));
    const text = await metrics.render();
    expect(sample(text, 'gpubroker_provider_errors_total{vendor="aws",kind="insufficient_capacity"}')).toBe(
      2,
    );
    expect(sample(text, 'gpubroker_provider_errors_total{vendor="gcp",kind="provider_unavailable"}')).toBe(1);
    expect(sample(text, 'gpubroker_calls{tenant="acme",status="pending"}')).toBe(3);
  });
});
