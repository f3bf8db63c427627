import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { simScenario } from '../providers/sim/scenario.ts';
import { peakGpus } from './engine/peak.ts';
import type { PolicyResult } from './results.ts';
import { simulate } from './simulate.ts';
import { AZURE_CONV_PATH, loadAzureLlm } from './workloads/azure-llm.ts';
import { scaledRequests } from './workloads/scale.ts';
import { syntheticWorkload } from './workloads/synthetic.ts';

const HOUR = 3_600_000;

// Each policy run opens an in-memory PGlite (about a second of CPU): here every run gets the file's one database,
// migrated and emptied (every table truncated, identities restarted) before each run, as a fresh one would be.
// The simulations run one at a time, and each closes its broker before the next begins.
const reused = vi.hoisted(() => ({ close: async () => {} }));
vi.mock('../broker/db/open-database.ts', async (importOriginal) => {
  const original = await importOriginal<typeof import('../broker/db/open-database.ts')>();
  const { reusedDatabase } = await import('../test/reused-database.ts');
  const database = reusedDatabase(() => original.openDatabase({}));
  reused.close = database.close;
  return {
    ...original,
    openDatabase: (options: Parameters<typeof original.openDatabase>[0]) =>
      options.url || options.dataDir ? original.openDatabase(options) : database.take(),
  };
});
afterAll(() => reused.close());

/** Everything but the wall-clock figures, which no seed controls. */
const reproducible = ({ wallMs: _wall, wallShare: _share, ...rest }: PolicyResult) => rest;

function expectSane(r: PolicyResult): void {
  expect(r.costUsd).toBeGreaterThan(0);
  expect(r.gpuHoursProvisioned).toBeGreaterThan(0);
  expect(r.gpuHoursUsed).toBeGreaterThan(0);
  expect(r.gpuHoursUsed).toBeLessThanOrEqual(r.gpuHoursProvisioned);
  expect(r.utilization).toBeGreaterThan(0);
  expect(r.utilization).toBeLessThanOrEqual(1);
  expect(r.waitMs.p95).toBeGreaterThanOrEqual(r.waitMs.p50);
  expect(r.waitMs.p99).toBeGreaterThanOrEqual(r.waitMs.p95);
  expect(r.unmetGpuHours).toBeGreaterThanOrEqual(0);
  expect(r.waitCdf.at(-1)?.fraction).toBe(1);
  const n = r.series.tMs.length;
  for (const values of [r.series.costUsd, r.series.preemptions, r.series.unmetGpus])
    expect(values).toHaveLength(n);
  expect(r.series.costUsd.at(-1)).toBeCloseTo(r.costUsd, 0);
  for (const [name, c] of Object.entries(r.invariants)) {
    expect(c.violations, name).toBe(0);
    // No budget, no spend check; a trace of leases only has no inputs to lose.
    if (name !== 'spendWithinBudget' && !(name === 'noInputLost' && r.coldStarts === 0))
      expect(c.checks, name).toBeGreaterThan(0);
  }
}

describe('simulations on the virtual clock', () => {
  it('gives identical results for the same seed and different ones for another seed', async () => {
    const run = async (seed: number) =>
      (
        await simulate({ workload: 'alibaba-sd', scale: 10, hours: 0.25, seed, policies: ['buffer-10'] })
      ).results.map(reproducible);
    const first = await run(7);
    expect(JSON.stringify(await run(7))).toBe(JSON.stringify(first));
    expect(JSON.stringify(await run(8))).not.toBe(JSON.stringify(first));
    expectSane(first[0] as PolicyResult);
  });

  it('replays the Stable Diffusion trace: a bigger buffer costs more and waits no longer', async () => {
    const { results, hours, scale } = await simulate({
      workload: 'alibaba-sd',
      scale: 100,
      hours: 1,
      seed: 1,
      policies: ['buffer-0', 'buffer-20'],
    });
    expect(hours).toBe(1);
    expect(scale).toBe(100);
    const [none, twenty] = results as [PolicyResult, PolicyResult];
    for (const r of results) expectSane(r);
    expect(none.requests).toBe(twenty.requests);
    expect(none.requests).toBeGreaterThan(5_000);
    expect(twenty.costUsd).toBeGreaterThan(none.costUsd);
    expect(twenty.waitMs.p95).toBeLessThanOrEqual(none.waitMs.p95);
    expect(twenty.waitMs.p99).toBeLessThanOrEqual(none.waitMs.p99);
    expect(twenty.unmetGpuHours).toBeLessThanOrEqual(none.unmetGpuHours);
    // Every call is a cold start or reuses a container; cold starts come from the measured model loads.
    expect(none.coldStarts).toBeGreaterThan(0);
    expect(none.coldStarts).toBeLessThan(none.requests);
    // The cheap invariants hold at every step of the clock that changed what they read, not only at the 5-minute
    // samples (13 in an hour).
    const { gpuNotDoubleBooked, meterTracksContainers, noInputLost } = none.invariants as Record<
      string,
      { checks: number; violations: number }
    >;
    expect(noInputLost?.checks).toBe(13);
    expect(gpuNotDoubleBooked?.checks).toBeGreaterThan(50 * (noInputLost?.checks ?? 0));
    expect(meterTracksContainers?.checks).toBe(gpuNotDoubleBooked?.checks);
  });

  it('replays the GPU cluster trace as leases of their gang size', async () => {
    // The busiest weeks hold 60–590 tasks a day: sped up 40× so that an hour holds over a hundred.
    const { results } = await simulate({
      workload: 'alibaba-gpu',
      speed: 40,
      hours: 1,
      seed: 1,
      policies: ['buffer-0'],
    });
    const r = results[0] as PolicyResult;
    expectSane(r);
    expect(r.requests).toBeGreaterThan(100);
    expect(r.coldStarts).toBe(0);
    // The first leases wait for instances to boot (minutes); later ones mostly find GPUs free.
    expect(r.waitMs.p99).toBeGreaterThan(60_000);
    expect(r.gpuHoursUsed).toBeGreaterThan(10);
    expect(r.series.byGpu.V100?.provisionedGpus.at(-1)).toBeGreaterThan(0);
  });

  it('replays an Azure LLM trace with service times from its tokens at the given throughput', async () => {
    const throughput = { tokensPerSecond: 100, prefillTokensPerSecond: 8_000 };
    const { results } = await simulate({
      workload: 'azure-conv',
      hours: 0.25,
      seed: 1,
      policies: ['buffer-10'],
      throughput,
    });
    const r = results[0] as PolicyResult;
    expectSane(r);
    expect(r.requests).toBeGreaterThan(4_000);
    expect(r.series.byGpu.H100?.provisionedGpus.at(-1)).toBeGreaterThan(0);
    // Every call of the trace's first quarter hour ran, each for 1000 × (context / 8,000 + generated / 100) ms: at
    // each sample, the calls demanding a GPU include every call inside its service time (it cannot have ended)
    // and none that could have ended (arrived before the sample by more than the longest wait plus its service).
    const calls = loadAzureLlm(AZURE_CONV_PATH, 'azure-conv', throughput).requests.filter(
      (q) => q.kind === 'call' && q.atMs < HOUR / 4,
    ) as { atMs: number; serviceMs: number }[];
    expect(r.requests).toBe(calls.length);
    expect(r.preemptions).toBe(0);
    const longestWaitMs = r.waitCdf.at(-1)?.ms ?? 0;
    const demand = r.series.byGpu.H100?.demandGpus ?? [];
    expect(demand).toHaveLength(r.series.tMs.length);
    r.series.tMs.forEach((t, i) => {
      const surelyRunning = calls.filter((c) => c.atMs < t && t < c.atMs + c.serviceMs).length;
      const possiblyRunning = calls.filter(
        (c) => c.atMs <= t && t <= c.atMs + longestWaitMs + c.serviceMs,
      ).length;
      expect(demand[i], `demand at ${t} ms`).toBeGreaterThanOrEqual(surelyRunning);
      expect(demand[i], `demand at ${t} ms`).toBeLessThanOrEqual(possiblyRunning);
    });
    expect(Math.max(...demand)).toBeGreaterThan(0);
  });

  it('holds a static peak reservation from the start, and keeps a budget', async () => {
    const budget = join(mkdtempSync(join(tmpdir(), 'gpubroker-sim-')), 'budget.json');
    writeFileSync(budget, JSON.stringify({ buffer: { default: { fraction: 0.1 } }, budgetUsdPerHour: 20 }));
    const { results } = await simulate({
      workload: 'diurnal',
      hours: 1,
      seed: 2,
      policies: ['static-peak', 'buffer-10', budget],
    });
    const [peak, dynamic, capped] = results as [PolicyResult, PolicyResult, PolicyResult];
    for (const r of results) expectSane(r);
    expect(peak.costUsd).toBeGreaterThan(dynamic.costUsd);
    // The peak is held once the first instances have booted, and nothing is given back.
    const workload = syntheticWorkload('diurnal', 1, 2);
    const held = peakGpus(scaledRequests(workload, { scale: 1, speed: 1, seed: 2 }), HOUR, {
      gpus: 1,
      concurrency: 1,
    });
    const provisioned = peak.series.byGpu.L4?.provisionedGpus ?? [];
    expect(Math.min(...provisioned.slice(2))).toBeGreaterThanOrEqual(held);
    expect(provisioned.every((n, i) => i === 0 || n >= (provisioned[i - 1] as number))).toBe(true);
    expect(capped.invariants.spendWithinBudget?.checks).toBeGreaterThan(0);
    expect(capped.costUsd).toBeLessThanOrEqual(20 + 1e-6);
  });

  it("serves demand beyond one region's quota from several regions, without a backlog", async () => {
    // 8 GPUs per region and capacity type: the first half hour of ×100 SD needs several times that. Plans that
    // ignored quotas asked one region for all of it, were refused at every tick, and requests waited for hours.
    const quota = [
      { gpu: 'L4', capacityType: 'on-demand' as const, maxGpus: 8 },
      { gpu: 'L4', capacityType: 'spot' as const, maxGpus: 8 },
    ];
    const { results } = await simulate({
      workload: 'alibaba-sd',
      scale: 100,
      hours: 0.5,
      seed: 1,
      policies: ['buffer-10'],
      scenario: simScenario({ settings: { aws: { quotas: quota }, gcp: { quotas: quota } } }),
    });
    const r = results[0] as PolicyResult;
    expectSane(r);
    const provisioned = r.series.byGpu.L4?.provisionedGpus ?? [];
    expect(Math.max(...provisioned)).toBeGreaterThan(32);
    expect(r.waitMs.p99).toBeLessThan(10 * 60_000);
  });
});
