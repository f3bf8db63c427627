/**
 * The same seed gives the same event log; another seed gives another. The workload below exercises every source
 * of randomness: delays, boot failures, zone choice, spot replay (trace mapping, shifts, victims), throttling,
 * stock-outs, quotas, an outage and a price change, across the three simulated vendors.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { Random } from '../../lib/random.ts';
import { loadCatalog } from '../catalog/load-catalog.ts';
import { ProviderError } from '../provider-errors.ts';
import { createSimClouds } from './sim-clouds.ts';

const catalog = loadCatalog();
const START = Date.UTC(2026, 10, 23);
const MINUTE = 60_000;

async function eventLog(seed: number): Promise<string[]> {
  const clock = new VirtualClock(START);
  const clouds = createSimClouds({
    clock,
    offerings: catalog,
    scenario: {
      seed,
      settings: { aws: { bootFailureRate: 0.05, throttle: { burst: 2, perSecond: 0.0025 } } },
      stock: { onDemandPerZone: 4, spotPerZone: 6 },
      outages: [{ vendor: 'gcp', region: 'us-central1', startMs: 20 * 60 * MINUTE, durationMs: 90 * MINUTE }],
      priceChanges: [{ atMs: 30 * 60 * MINUTE, match: { gpu: 'A100-80GB' }, factor: 1.25 }],
    },
  });
  const log: string[] = [];
  for (const cloud of clouds) cloud.subscribe((e) => log.push(JSON.stringify(e)));
  const offerings = catalog.filter(
    (o) => ['us-east-1', 'us-west-2', 'us-central1', 'eastus'].includes(o.region) && o.gpusPerInstance <= 8,
  );
  // The workload's own choices come from a fixed seed, so only the clouds' seed differs between runs.
  const workload = new Random(1234);
  const owned: { vendor: string; id: string }[] = [];
  for (let step = 0; step < 3 * 24 * 6; step++) {
    await clock.advanceBy(10 * MINUTE);
    const offering = workload.pick(offerings);
    const cloud = clouds.find((c) => c.vendor === offering.vendor);
    if (!cloud) continue;
    try {
      const launched = await cloud.provision({
        offeringId: offering.id,
        count: workload.int(1, 3),
        idempotencyKey: `step-${step}`,
        tags: { step: String(step) },
      });
      owned.push(...launched.map((i) => ({ vendor: i.vendor, id: i.id })));
    } catch (error) {
      if (!(error instanceof ProviderError)) throw error;
      log.push(`${clock.now()} ${error.constructor.name} ${error.message}`);
    }
    if (owned.length > 0 && workload.chance(0.3)) {
      const victim = owned.splice(workload.int(0, owned.length - 1), 1)[0];
      const cloud = clouds.find((c) => c.vendor === victim?.vendor);
      await cloud?.terminate([victim?.id ?? '']).catch((error: unknown) => log.push(String(error)));
    }
  }
  for (const cloud of clouds) await cloud.close();
  return log;
}

describe('simulated clouds are deterministic', () => {
  it('gives identical event logs for one seed and different logs for another', async () => {
    const a = await eventLog(21);
    const b = await eventLog(21);
    const c = await eventLog(22);
    expect(a.length).toBeGreaterThan(500);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    const joined = a.join('\n');
    for (const kind of [
      'interruption-notice',
      'failure',
      'price-changed',
      '"to":"running"',
      '"to":"terminated"',
    ])
      expect(joined).toContain(kind);
    for (const error of ['InsufficientCapacityError', 'ThrottledError', 'ProviderUnavailableError'])
      expect(joined).toContain(error);
  });
});
