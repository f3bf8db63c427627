import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { ValidationError } from '../../lib/errors.ts';
import { loadCatalog } from '../catalog/load-catalog.ts';
import { describeProviderContract, virtualTime } from '../provider.contract.ts';
import type { ProviderEvent } from '../provider.ts';
import {
  InsufficientCapacityError,
  InvalidRequestError,
  ProviderUnavailableError,
  QuotaExceededError,
  ThrottledError,
} from '../provider-errors.ts';
import { type SimScenarioInput, simScenario } from './scenario.ts';
import { createSimClouds } from './sim-clouds.ts';
import { SimProvider } from './sim-provider.ts';

const catalog = loadCatalog();
const A10G = 'aws/us-east-1/g5.xlarge/on-demand';
const H100 = 'aws/us-east-1/p5.48xlarge/on-demand';
const V100_SPOT = 'aws/us-east-1/p3.2xlarge/spot';
const START = Date.UTC(2026, 10, 23);
const HOUR = 3_600_000;

/** A quiet AWS: no throttling, no boot failures, no spot replay, unless the test says otherwise. */
function awsSim(scenario: SimScenarioInput = {}, clock = new VirtualClock(START)) {
  const quiet: SimScenarioInput = {
    seed: 3,
    spot: { replay: false },
    ...scenario,
    settings: { aws: { throttle: null, bootFailureRate: 0, ...(scenario.settings?.aws ?? {}) } },
  };
  const provider = new SimProvider({
    vendor: 'aws',
    clock,
    offerings: catalog,
    scenario: simScenario(quiet),
  });
  const events: ProviderEvent[] = [];
  provider.subscribe((e) => events.push(e));
  return { provider, clock, events };
}

describeProviderContract('sim (aws)', async () => {
  const { provider, clock } = awsSim({
    settings: {
      aws: { zonesPerRegion: 1, quotas: [{ gpu: 'H100', capacityType: 'on-demand', maxGpus: 8 }] },
    },
    stock: { rules: [{ match: { offeringId: A10G }, onDemandPerZone: 3 }] },
  });
  return {
    provider,
    offeringId: A10G,
    capacity: 3,
    ...virtualTime(clock),
    exceedQuota: () => provider.provision({ offeringId: H100, count: 2, idempotencyKey: 'quota' }),
    dispose: () => provider.close(),
  };
});

describe('simulated cloud', () => {
  it('boots within the configured delay distribution', async () => {
    const { provider, clock, events } = awsSim({
      settings: {
        aws: { provisioningDelay: { 'on-demand': { kind: 'uniform', minMs: 60_000, maxMs: 240_000 } } },
      },
    });
    await provider.provision({ offeringId: A10G, count: 16, idempotencyKey: 'k' });
    await clock.advanceBy(HOUR);
    const boots = events
      .filter((e) => e.kind === 'state-changed' && e.to === 'running')
      .map((e) => e.atMs - START);
    expect(boots).toHaveLength(16);
    for (const ms of boots) expect(ms >= 60_000 && ms <= 240_000).toBe(true);
    expect(new Set(boots).size).toBeGreaterThan(8);
  });

  it('spreads calls over zones: each call goes to the zone with most free stock', async () => {
    const { provider } = awsSim({ stock: { onDemandPerZone: 4 } });
    const zones = [];
    for (let k = 0; k < 3; k++)
      zones.push(
        (await provider.provision({ offeringId: A10G, count: 3, idempotencyKey: `z${k}` }))[0]?.zone,
      );
    expect(new Set(zones).size).toBe(3);
    // One free left per zone: a call for 2 cannot be met in any single zone.
    await expect(
      provider.provision({ offeringId: A10G, count: 2, idempotencyKey: 'z4' }),
    ).rejects.toBeInstanceOf(InsufficientCapacityError);
    expect(provider.capacity(A10G, 'us-east-1a')).toEqual({ stock: 4, free: 1 });
  });

  it('counts per-region GPU quotas over pending and running instances, and frees them on termination', async () => {
    const { provider, clock } = awsSim({
      settings: { aws: { quotas: [{ capacityType: 'on-demand', maxGpus: 16 }] } },
    });
    const first = await provider.provision({ offeringId: H100, count: 2, idempotencyKey: 'a' });
    const error = await provider
      .provision({ offeringId: A10G, count: 1, idempotencyKey: 'b' })
      .catch((e) => e);
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(error).toMatchObject({ limit: 16, requested: 1 });
    // Another region has its own quota.
    await provider.provision({
      offeringId: 'aws/us-west-2/g5.xlarge/on-demand',
      count: 1,
      idempotencyKey: 'c',
    });
    await provider.terminate([first[0]?.id ?? '']);
    await clock.advanceBy(5 * 60_000);
    await provider.provision({ offeringId: A10G, count: 1, idempotencyKey: 'b' });
  });

  it('throttles with a token bucket and says when to retry', async () => {
    const { provider, clock } = awsSim({ settings: { aws: { throttle: { burst: 3, perSecond: 2 } } } });
    for (let k = 0; k < 3; k++) await provider.list();
    const error = await provider.list().catch((e) => e);
    expect(error).toBeInstanceOf(ThrottledError);
    expect((error as ThrottledError).retryAfterMs).toBe(500);
    await clock.advanceBy(500);
    await provider.list();
  });

  it('fails a region during an api outage and recovers after it', async () => {
    const { provider, clock } = awsSim({
      outages: [{ vendor: 'aws', region: 'us-east-1', startMs: HOUR, durationMs: HOUR }],
    });
    const [kept] = await provider.provision({ offeringId: A10G, count: 1, idempotencyKey: 'before' });
    await clock.advanceBy(HOUR + 1);
    await expect(
      provider.provision({ offeringId: A10G, count: 1, idempotencyKey: 'during' }),
    ).rejects.toBeInstanceOf(ProviderUnavailableError);
    await expect(provider.terminate([kept?.id ?? ''])).rejects.toBeInstanceOf(ProviderUnavailableError);
    const quotes = await provider.offerings();
    expect(quotes.find((o) => o.id === A10G)?.available).toBe(false);
    expect(quotes.find((o) => o.id === 'aws/us-west-2/g5.xlarge/on-demand')?.available).toBe(true);
    expect((await provider.list()).map((i) => i.state)).toEqual(['running']);
    await clock.advanceBy(HOUR);
    await provider.provision({ offeringId: A10G, count: 1, idempotencyKey: 'during' });
  });

  it('fails every instance of a zone in a zone failure, with failure events', async () => {
    const { provider, clock, events } = awsSim({
      settings: { aws: { zonesPerRegion: 1 } },
      outages: [
        {
          vendor: 'aws',
          region: 'us-east-1',
          zone: 'us-east-1a',
          kind: 'zone-failure',
          startMs: HOUR,
          durationMs: HOUR,
        },
      ],
    });
    await provider.provision({ offeringId: A10G, count: 3, idempotencyKey: 'a' });
    await clock.advanceBy(HOUR);
    expect(events.filter((e) => e.kind === 'failure')).toHaveLength(3);
    const listed = await provider.list({ includeTerminated: true });
    expect(listed.map((i) => i.terminationReason)).toEqual(['failed', 'failed', 'failed']);
  });

  it('changes prices on schedule and tells subscribers', async () => {
    const { provider, clock, events } = awsSim({
      priceChanges: [{ atMs: HOUR, match: { gpu: 'H100', region: 'us-east-1' }, factor: 1.5 }],
    });
    const before = (await provider.offerings()).find((o) => o.id === H100)?.microsPerHour;
    expect(before).toBe(55_040_000);
    await clock.advanceBy(HOUR);
    expect((await provider.offerings()).find((o) => o.id === H100)?.microsPerHour).toBe(82_560_000);
    expect(events.some((e) => e.kind === 'price-changed' && e.offeringId === H100)).toBe(true);
    const [launched] = await provider.provision({ offeringId: H100, count: 1, idempotencyKey: 'p' });
    expect(launched?.microsPerHour).toBe(82_560_000);
  });

  it('sells reserved capacity up to the reservation', async () => {
    const { provider } = awsSim({ reservations: [{ offeringId: H100, count: 2 }] });
    const reserved = (await provider.offerings()).find((o) => o.id === 'aws/us-east-1/p5.48xlarge/reserved');
    expect(reserved?.microsPerHour).toBe(33_024_000);
    await provider.provision({ offeringId: reserved?.id ?? '', count: 2, idempotencyKey: 'r' });
    await expect(
      provider.provision({ offeringId: reserved?.id ?? '', count: 1, idempotencyKey: 'r2' }),
    ).rejects.toBeInstanceOf(InsufficientCapacityError);
  });

  it('fails boots at the configured rate with failure events', async () => {
    const { provider, clock, events } = awsSim({ settings: { aws: { bootFailureRate: 1 } } });
    await provider.provision({ offeringId: A10G, count: 2, idempotencyKey: 'f' });
    await clock.advanceBy(HOUR);
    expect(events.filter((e) => e.kind === 'failure').map((e) => e.kind === 'failure' && e.message)).toEqual([
      'instance failed to boot',
      'instance failed to boot',
    ]);
    expect((await provider.list({ includeTerminated: true })).map((i) => i.terminationReason)).toEqual([
      'failed',
      'failed',
    ]);
  });

  it('stops serving after close and ends event iterations', async () => {
    const { provider } = awsSim();
    const iteration = (async () => {
      const seen = [];
      for await (const e of provider.events()) seen.push(e);
      return seen;
    })();
    await provider.close();
    expect(await iteration).toEqual([]);
    await expect(provider.list()).rejects.toBeInstanceOf(ProviderUnavailableError);
  });

  it('builds one cloud per catalog vendor by default', () => {
    const clouds = createSimClouds({ clock: new VirtualClock(START) });
    expect(clouds.map((c) => c.vendor)).toEqual(['aws', 'azure', 'gcp']);
    expect(clouds.map((c) => c.settings.interruptionWarningMs)).toEqual([120_000, 30_000, 30_000]);
    expect(clouds[0]?.zonesOf('us-east-1')).toEqual(['us-east-1a', 'us-east-1b', 'us-east-1c']);
    expect(clouds[1]?.zonesOf('eastus')).toEqual(['eastus-1', 'eastus-2', 'eastus-3']);
    expect(clouds[2]?.zonesOf('us-central1')).toEqual(['us-central1-a', 'us-central1-b', 'us-central1-c']);
  });

  it('rejects a bad scenario naming the field', () => {
    const bad = (input: unknown) => () => simScenario(input as SimScenarioInput);
    expect(bad({ stock: { onDemandPerZone: -1 } })).toThrow(ValidationError);
    expect(bad({ stock: { onDemandPerZone: -1 } })).toThrow(/scenario\.stock\.onDemandPerZone/);
    expect(
      bad({ settings: { aws: { provisioningDelay: { spot: { kind: 'uniform', minMs: 5, maxMs: 1 } } } } }),
    ).toThrow(/scenario\.settings\.aws\.provisioningDelay\.spot\.maxMs/);
    expect(bad({ priceChanges: [{ atMs: 0, match: {}, factor: 2, usdPerHour: 1 }] })).toThrow(
      /priceChanges\.0\.factor/,
    );
    expect(bad({ outages: [{ vendor: 'aws', startMs: 0, durationMs: 0 }] })).toThrow(
      /outages\.0\.durationMs/,
    );
    expect(bad({ unknown: 1 })).toThrow(ValidationError);
  });

  it('keeps a provision whole and events in order when a listener throws or calls back in', async () => {
    const { provider, clock } = awsSim();
    const order: string[] = [];
    let thrown = 0;
    provider.subscribe((e) => {
      if (e.kind !== 'state-changed') return;
      if (e.to === 'pending' && thrown++ === 1) throw new Error('listener bug');
      if (e.to === 'running') void provider.terminate([e.instanceId, e.instanceId]);
    });
    provider.subscribe((e) => e.kind === 'state-changed' && order.push(`${e.instanceId}:${e.from}>${e.to}`));
    const swallowed: unknown[] = [];
    const onError = (error: unknown) => swallowed.push(error);
    process.on('uncaughtException', onError);
    try {
      const launched = await provider.provision({ offeringId: A10G, count: 3, idempotencyKey: 'whole' });
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(swallowed).toHaveLength(1);
      expect(await provider.provision({ offeringId: A10G, count: 3, idempotencyKey: 'whole' })).toEqual(
        launched,
      );
      await clock.advanceBy(HOUR);
      for (const instance of launched) {
        const mine = order.filter((line) => line.startsWith(`${instance.id}:`)).map((l) => l.split(':')[1]);
        expect(mine).toEqual([
          'null>pending',
          'pending>running',
          'running>terminating',
          'terminating>terminated',
        ]);
      }
    } finally {
      process.off('uncaughtException', onError);
    }
  });

  it('rejects an unknown trace name and a zone outage without its region when the clouds are built', () => {
    expect(() => awsSim({ spot: { pools: [{ match: {}, preemption: 'nope.json' }] } })).toThrow(
      /scenario\.spot\.pools\.0\.preemption/,
    );
    expect(() =>
      simScenario({ outages: [{ vendor: 'aws', zone: 'us-east-1a', startMs: 0, durationMs: 1 }] }),
    ).toThrow(/scenario\.outages\.0\.region/);
  });

  it('a spot offering reports where it can be had', async () => {
    const { provider } = awsSim({ spot: { replay: true } });
    const quote = (await provider.offerings()).find((o) => o.id === V100_SPOT);
    expect(quote?.availableZones.every((z) => provider.capacity(V100_SPOT, z).free > 0)).toBe(true);
    const error = await provider
      .provision({ offeringId: V100_SPOT, count: 1, idempotencyKey: 'x', zone: 'eu-west-1a' })
      .catch((e) => e);
    expect(error).toBeInstanceOf(InvalidRequestError);
  });
});
