import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RealClock } from '../../lib/clock.ts';
import { ValidationError } from '../../lib/errors.ts';
import { microsToUsd } from '../../lib/money.ts';
import { type AgentBootstrap, agentStartupScript } from '../agent-bootstrap.ts';
import { loadCatalog } from '../catalog/load-catalog.ts';
import { type ContractHarness, describeProviderContract } from '../provider.contract.ts';
import type { ProviderEvent } from '../provider.ts';
import {
  InsufficientCapacityError,
  InvalidRequestError,
  ProviderUnavailableError,
  QuotaExceededError,
  ThrottledError,
} from '../provider-errors.ts';
import { awsOptionsFromEnv } from './aws-env.ts';
import type { AwsProviderOptions } from './aws-options.ts';
import { type AwsProvider, createAwsProvider } from './aws-provider.ts';
import { FakeEc2, type FakeEc2Options } from './testing/fake-ec2.ts';

const catalog = loadCatalog();
const clock = new RealClock();
const REGIONS = ['us-east-1', 'us-west-2'];
const ZONES = { 'us-east-1': ['us-east-1a', 'us-east-1b'], 'us-west-2': ['us-west-2a', 'us-west-2b'] };
const A10G = 'aws/us-east-1/g5.xlarge/on-demand';
const A10G_SPOT = 'aws/us-east-1/g5.xlarge/spot';
const H100 = 'aws/us-east-1/p5.48xlarge/on-demand';
const IMAGE = 'ami-0123456789abcdef0';
const CREDENTIALS = { accessKeyId: 'AKIDFAKEEC2', secretAccessKey: 'fake-secret' };

/** EC2's instance types as the catalog knows them, with their vCPUs. */
const INSTANCE_TYPES = Object.fromEntries(
  catalog.filter((o) => o.vendor === 'aws').map((o) => [o.instanceType, { vcpus: o.vcpus }]),
);

/** A spot price per spot offering and zone: the catalog's in zone `a`, a cent more in zone `b`. */
const SPOT_PRICES = catalog
  .filter((o) => o.vendor === 'aws' && o.capacityType === 'spot' && REGIONS.includes(o.region))
  .flatMap((o) => [
    { instanceType: o.instanceType, zone: `${o.region}a`, usd: microsToUsd(o.microsPerHour).toFixed(6) },
    {
      instanceType: o.instanceType,
      zone: `${o.region}b`,
      usd: (microsToUsd(o.microsPerHour) + 0.01).toFixed(6),
    },
  ]);

interface Setup {
  readonly fake: FakeEc2;
  readonly provider: AwsProvider;
  readonly endpoint: string;
  readonly events: ProviderEvent[];
  /** Another adapter on the same fake (a restarted broker). */
  another(options?: Partial<AwsProviderOptions>): Promise<AwsProvider>;
  dispose(): Promise<void>;
}

const open: Setup[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.dispose();
});

async function setup(
  fakeOptions: Partial<FakeEc2Options> = {},
  options: Partial<AwsProviderOptions> = {},
): Promise<Setup> {
  const fake = new FakeEc2({
    zones: ZONES,
    instanceTypes: INSTANCE_TYPES,
    spotPrices: SPOT_PRICES,
    bootDelayMs: 60,
    terminateDelayMs: 60,
    spotWarningMs: 200,
    ...fakeOptions,
  });
  const endpoint = await fake.start();
  const providers: AwsProvider[] = [];
  const make = async (extra: Partial<AwsProviderOptions> = {}) => {
    const p = await createAwsProvider({
      clock,
      regions: REGIONS,
      launch: { imageId: IMAGE },
      brokerId: 'test-broker',
      credentials: CREDENTIALS,
      endpoint,
      pollIntervalMs: 25,
      backoff: { baseDelayMs: 10, maxDelayMs: 1_000, maxRetries: 3 },
      offerings: catalog,
      ...options,
      ...extra,
    });
    providers.push(p);
    return p;
  };
  const provider = await make();
  const events: ProviderEvent[] = [];
  const stop = new AbortController();
  const reader = (async () => {
    for await (const event of provider.events({ signal: stop.signal })) events.push(event);
  })();
  const s: Setup = {
    fake,
    provider,
    endpoint,
    events,
    another: make,
    async dispose() {
      stop.abort();
      await reader;
      for (const p of providers) await p.close();
      await fake.close();
    },
  };
  open.push(s);
  return s;
}

async function waitUntil(predicate: () => boolean | Promise<boolean>, maxMs = 3_000): Promise<void> {
  const deadline = clock.now() + maxMs;
  while (!(await predicate())) {
    if (clock.now() > deadline) throw new Error(`condition not met within ${maxMs} ms`);
    await clock.sleep(10);
  }
}

function realTime(): Pick<ContractHarness, 'waitFor' | 'elapse'> {
  return {
    async waitFor(predicate, maxMs) {
      await waitUntil(predicate, maxMs);
    },
    elapse: (ms) => clock.sleep(ms),
  };
}

describeProviderContract('aws (fake EC2)', async () => {
  const fake = new FakeEc2({
    zones: ZONES,
    instanceTypes: INSTANCE_TYPES,
    spotPrices: SPOT_PRICES,
    capacity: [{ instanceType: 'g5.xlarge', market: 'on-demand', count: 3 }],
    quotas: { onDemandVcpus: 64 },
    bootDelayMs: 60,
    terminateDelayMs: 60,
  });
  const endpoint = await fake.start();
  const provider = await createAwsProvider({
    clock,
    regions: REGIONS,
    launch: { imageId: IMAGE },
    credentials: CREDENTIALS,
    endpoint,
    pollIntervalMs: 25,
    offerings: catalog,
  });
  return {
    provider,
    offeringId: A10G,
    capacity: 3,
    ...realTime(),
    // Waits for a state keep 1.5 s, at least.
    waitFor: (predicate, maxMs) => waitUntil(predicate, Math.max(maxMs, 1_500)),
    exceedQuota: () => provider.provision({ offeringId: H100, count: 1, idempotencyKey: 'quota' }),
    // The fake boots and terminates in 60 ms (polls every 25): a VM terminated while pending has had 8 times its
    // boot to come back after 500 ms of real waiting.
    settleMs: 500,
    async dispose() {
      await provider.close();
      await fake.close();
    },
  };
});

describe('AWS adapter', () => {
  it('offers the zones EC2 offers each type in, with live spot prices', async () => {
    const { provider } = await setup({
      notOffered: [{ instanceType: 'p5.48xlarge', zone: 'us-east-1b' }],
      spotPrices: [
        { instanceType: 'g5.xlarge', zone: 'us-east-1a', usd: '0.500000' },
        { instanceType: 'g5.xlarge', zone: 'us-east-1b', usd: '0.401234' },
      ],
    });
    const quotes = await provider.offerings();
    const byId = new Map(quotes.map((q) => [q.id, q]));
    expect(quotes.length).toBe(
      catalog.filter((o) => o.vendor === 'aws' && REGIONS.includes(o.region)).length,
    );
    expect(byId.get(A10G)).toMatchObject({ available: true, availableZones: ['us-east-1a', 'us-east-1b'] });
    expect(byId.get(H100)?.availableZones).toEqual(['us-east-1a']);
    expect(byId.get(A10G_SPOT)).toMatchObject({
      microsPerHour: 401_234,
      available: true,
      availableZones: ['us-east-1a', 'us-east-1b'],
    });
    // No spot price, no spot market.
    expect(byId.get('aws/us-east-1/g5.2xlarge/spot')).toMatchObject({ available: false, availableZones: [] });
    expect(byId.get('aws/us-west-2/g5.xlarge/on-demand')?.availableZones).toEqual([
      'us-west-2a',
      'us-west-2b',
    ]);
  });

  it('publishes price changes seen between two offerings calls', async () => {
    const { provider, fake, events } = await setup();
    const spotPrice = async () => (await provider.offerings()).find((q) => q.id === A10G_SPOT)?.microsPerHour;
    const before = await spotPrice();
    expect(before).toBeGreaterThan(111_111);
    fake.setSpotPrice('g5.xlarge', 'us-east-1a', '0.111111');
    expect(await spotPrice()).toBe(111_111);
    const changes = () => events.filter((e) => e.kind === 'price-changed' && e.offeringId === A10G_SPOT);
    await waitUntil(() => changes().length > 0);
    expect(changes()).toEqual([expect.objectContaining({ microsPerHour: 111_111 })]);
  });

  describe('on-demand list prices (Price List Query API)', () => {
    /** Two instance types in both regions: few GetProducts calls per read. */
    const small = catalog.filter(
      (o) => o.vendor === 'aws' && ['g5.xlarge', 'p5.48xlarge'].includes(o.instanceType),
    );
    const catalogPrice = (id: string) => small.find((o) => o.id === id)?.microsPerHour;
    const W2_A10G = 'aws/us-west-2/g5.xlarge/on-demand';

    /** A fake with list prices for two types in us-east-1, and an adapter reading them from it. */
    async function pricedSetup(options: Partial<AwsProviderOptions> = {}) {
      const logs: { fields: Record<string, unknown>; message: string }[] = [];
      const s = await setup({
        onDemandPrices: [
          { instanceType: 'g5.xlarge', region: 'us-east-1', usd: '1.234567' },
          // Finer than a micro: rounds to the nearest one.
          { instanceType: 'p5.48xlarge', region: 'us-east-1', usd: '55.1234567891' },
        ],
      });
      const provider = await s.another({
        offerings: small,
        pricingEndpoint: s.endpoint,
        log: { debug: (fields, message) => logs.push({ fields, message }) },
        ...options,
      });
      const events: ProviderEvent[] = [];
      // The iteration ends when the setup closes the provider.
      void (async () => {
        for await (const event of provider.events()) events.push(event);
      })();
      const price = async (id: string) =>
        (await provider.offerings()).find((q) => q.id === id)?.microsPerHour;
      return { fake: s.fake, provider, events, logs, price };
    }

    it('prices on-demand offerings from GetProducts, and keeps the catalog price where the list has none', async () => {
      const { provider, fake, logs } = await pricedSetup();
      const byId = new Map((await provider.offerings()).map((q) => [q.id, q]));
      expect(byId.get(A10G)?.microsPerHour).toBe(1_234_567);
      expect(byId.get(H100)?.microsPerHour).toBe(55_123_457);
      expect(byId.get(W2_A10G)?.microsPerHour).toBe(catalogPrice(W2_A10G));
      // Spot prices still come from the spot price history.
      expect(byId.get(A10G_SPOT)?.microsPerHour).toBe(catalogPrice(A10G_SPOT));
      // The filters single out the Linux on-demand product (the fake's decoys are priced otherwise), in us-east-1.
      const call = fake.calls('GetProducts').find((c) => c.params['Filter.instanceType'] === 'g5.xlarge');
      expect(call).toMatchObject({
        region: 'us-east-1',
        status: 200,
        params: {
          ServiceCode: 'AmazonEC2',
          'Filter.regionCode': 'us-east-1',
          'Filter.operatingSystem': 'Linux',
          'Filter.tenancy': 'Shared',
          'Filter.preInstalledSw': 'NA',
          'Filter.capacitystatus': 'Used',
        },
      });
      expect(logs).toContainEqual({
        fields: { vendor: 'aws', offerings: expect.arrayContaining([W2_A10G]) },
        message: expect.stringMatching(/no price for these offerings; they keep the catalog price/),
      });
      const [instance] = await provider.provision({
        offeringId: A10G,
        count: 1,
        idempotencyKey: 'list-price',
      });
      expect(instance?.microsPerHour).toBe(1_234_567);
    });

    it('reads the list prices once per priceRefreshMs, whatever the number of offerings calls', async () => {
      const { provider, fake } = await pricedSetup({ priceRefreshMs: 3_600_000 });
      await Promise.all([provider.offerings(), provider.offerings()]);
      await provider.offerings();
      // One call per on-demand offering of the configured regions, for all three offerings calls.
      expect(fake.calls('GetProducts')).toHaveLength(
        small.filter((o) => o.capacityType === 'on-demand' && REGIONS.includes(o.region)).length,
      );
    });

    it('keeps the catalog price when the Price List Query API fails, without failing offerings, and reads again later', async () => {
      const { fake, logs, price } = await pricedSetup({ priceRefreshMs: 200 });
      fake.failNext('GetProducts', 'ThrottlingException', { times: 2, message: 'Rate exceeded' });
      expect(await price(A10G)).toBe(catalogPrice(A10G));
      expect(logs).toContainEqual({
        fields: { vendor: 'aws', err: expect.anything() },
        message: 'reading list prices failed; offerings keep the catalog prices',
      });
      await waitUntil(async () => (await price(A10G)) === 1_234_567);
    });

    it('publishes an on-demand price change after the prices are read again', async () => {
      const { fake, events, price } = await pricedSetup({ priceRefreshMs: 500 });
      expect(await price(A10G)).toBe(1_234_567);
      fake.setOnDemandPrice('g5.xlarge', 'us-east-1', '0.999999');
      const changes = () => events.filter((e) => e.kind === 'price-changed' && e.offeringId === A10G);
      await waitUntil(async () => (await price(A10G)) === 999_999);
      await waitUntil(() => changes().length > 0);
      expect(changes()).toEqual([expect.objectContaining({ vendor: 'aws', microsPerHour: 999_999 })]);
    });

    it('reads no list prices when EC2 has another endpoint and the Price List Query API has none', async () => {
      const { fake } = await pricedSetup();
      const logs: string[] = [];
      const provider = await createAwsProvider({
        clock,
        regions: REGIONS,
        launch: { imageId: IMAGE },
        credentials: CREDENTIALS,
        endpoint: fake.url,
        offerings: small,
        log: { debug: (_fields, message) => logs.push(message) },
      });
      try {
        const before = fake.calls('GetProducts').length;
        expect((await provider.offerings()).find((q) => q.id === A10G)?.microsPerHour).toBe(
          catalogPrice(A10G),
        );
        expect(fake.calls('GetProducts')).toHaveLength(before);
        expect(logs).toContain('live list prices are off; offerings keep the catalog prices');
      } finally {
        await provider.close();
      }
    });
  });

  it('launches with the configured image, subnets and tags, MinCount = MaxCount, and spot market options', async () => {
    const { provider, fake } = await setup(
      { subnets: { 'subnet-0aaaaaaaaaaaaaaa1': 'us-east-1a' } },
      {
        launch: { imageId: IMAGE },
        launchByRegion: {
          'us-east-1': {
            subnetIds: { 'us-east-1a': 'subnet-0aaaaaaaaaaaaaaa1' },
            securityGroupIds: ['sg-0bbbbbbbbbbbbbbb2'],
          },
        },
      },
    );
    const [spot] = await provider.provision({
      offeringId: A10G_SPOT,
      count: 2,
      idempotencyKey: 'launch-1',
      tags: { team: 'ml' },
    });
    const params = fake.calls('RunInstances')[0]?.params ?? {};
    expect(params).toMatchObject({
      ImageId: IMAGE,
      InstanceType: 'g5.xlarge',
      MinCount: '2',
      MaxCount: '2',
      SubnetId: 'subnet-0aaaaaaaaaaaaaaa1',
      'SecurityGroupId.1': 'sg-0bbbbbbbbbbbbbbb2',
      'InstanceMarketOptions.MarketType': 'spot',
      'InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior': 'terminate',
      InstanceInitiatedShutdownBehavior: 'terminate',
      'TagSpecification.1.ResourceType': 'instance',
    });
    expect(params.ClientToken).toMatch(/^[0-9a-f]{64}$/);
    const tags = fake.list().find((i) => i.id === spot?.id)?.tags;
    expect(tags).toEqual({
      'gpubroker:broker': 'test-broker',
      'gpubroker:offering': A10G_SPOT,
      'gpubroker:key': 'launch-1',
      team: 'ml',
    });
    expect(spot).toMatchObject({ zone: 'us-east-1a', capacityType: 'spot', tags: { team: 'ml' } });
    // The spot price of the zone it launched in (zone a has the catalog price).
    expect(spot?.microsPerHour).toBe(catalog.find((o) => o.id === A10G_SPOT)?.microsPerHour);
  });

  it('tries the next zone when one has no capacity, and keeps that zone out of the offering for a while', async () => {
    const { provider, fake } = await setup({
      capacity: [{ instanceType: 'g5.xlarge', zone: 'us-east-1a', market: 'on-demand', count: 0 }],
    });
    const [instance] = await provider.provision({ offeringId: A10G, count: 1, idempotencyKey: 'failover' });
    expect(instance?.zone).toBe('us-east-1b');
    expect(
      fake.calls('RunInstances').map((r) => [r.params['Placement.AvailabilityZone'], r.errorCode]),
    ).toEqual([
      ['us-east-1a', 'InsufficientInstanceCapacity'],
      ['us-east-1b', undefined],
    ]);
    const quote = (await provider.offerings()).find((q) => q.id === A10G);
    expect(quote?.availableZones).toEqual(['us-east-1b']);
  });

  describe('maps EC2 errors to the typed errors', () => {
    const single = { regions: ['us-east-1'], pollIntervalMs: 60_000 };
    const request = { offeringId: A10G, count: 1, idempotencyKey: 'errors', tags: { t: '1' } };

    it('InsufficientInstanceCapacity in every zone: InsufficientCapacityError, nothing launched', async () => {
      const { provider, fake } = await setup({}, single);
      fake.failNext('RunInstances', 'InsufficientInstanceCapacity', { times: 2 });
      const error = await provider.provision(request).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InsufficientCapacityError);
      expect(error).toMatchObject({ offeringId: A10G });
      expect((error as InsufficientCapacityError).retryAfterMs).toBeGreaterThan(0);
      expect(fake.calls('RunInstances')).toHaveLength(2);
      expect(fake.list()).toEqual([]);
    });

    it('VcpuLimitExceeded and MaxSpotInstanceCountExceeded: QuotaExceededError', async () => {
      const { provider } = await setup({ quotas: { onDemandVcpus: 16, spotVcpus: 4 } }, single);
      const onDemand = await provider
        .provision({ offeringId: H100, count: 1, idempotencyKey: 'q1' })
        .catch((e: unknown) => e);
      expect(onDemand).toBeInstanceOf(QuotaExceededError);
      expect(onDemand).toMatchObject({ limit: 16, requested: 192 });
      const spot = await provider
        .provision({ offeringId: A10G_SPOT, count: 2, idempotencyKey: 'q2' })
        .catch((e: unknown) => e);
      expect(spot).toBeInstanceOf(QuotaExceededError);
      expect((spot as QuotaExceededError).quota).toContain('spot');
    });

    it.each([
      ['AuthFailure', 'RunInstances', ProviderUnavailableError],
      ['UnauthorizedOperation', 'RunInstances', ProviderUnavailableError],
      ['InvalidParameterValue', 'RunInstances', InvalidRequestError],
      ['InvalidAMIID.NotFound', 'RunInstances', InvalidRequestError],
      ['IdempotentParameterMismatch', 'RunInstances', InvalidRequestError],
      ['InternalError', 'RunInstances', ProviderUnavailableError],
      ['Unavailable', 'DescribeInstances', ProviderUnavailableError],
    ])('%s from %s: %o', async (code, action, expected) => {
      const { provider, fake } = await setup({}, single);
      fake.failNext(action, code, { message: `a ${code} message` });
      const error = await provider.provision(request).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(expected);
      expect((error as Error).message).toContain(code);
      if (code === 'IdempotentParameterMismatch') expect(error).toMatchObject({ field: 'idempotencyKey' });
      if (code === 'InvalidAMIID.NotFound') expect(error).toMatchObject({ field: 'launch.imageId' });
    });

    it('reads (list, terminate, offerings) fail only with ThrottledError or ProviderUnavailableError', async () => {
      const { provider, fake } = await setup({}, single);
      fake.failNext('DescribeInstances', 'InvalidParameterValue');
      await expect(provider.list()).rejects.toBeInstanceOf(ProviderUnavailableError);
      fake.failNext('TerminateInstances', 'UnauthorizedOperation');
      await expect(provider.terminate(['i-0123456789abcdef0'])).rejects.toBeInstanceOf(
        ProviderUnavailableError,
      );
      fake.failNext('DescribeInstanceTypeOfferings', 'AuthFailure');
      const error = await provider.offerings().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderUnavailableError);
      expect((error as Error).message).toMatch(/AuthFailure/);
    });

    it('an EC2 that does not answer: ProviderUnavailableError', async () => {
      const { provider, fake } = await setup({}, single);
      await fake.close();
      await expect(provider.list()).rejects.toBeInstanceOf(ProviderUnavailableError);
      await expect(provider.provision(request)).rejects.toBeInstanceOf(ProviderUnavailableError);
    });
  });

  describe('throttling (RequestLimitExceeded)', () => {
    const single = { regions: ['us-east-1'], pollIntervalMs: 60_000 };

    it('is retried with exponential backoff until EC2 answers', async () => {
      const { provider, fake } = await setup({}, single);
      fake.failNext('DescribeInstances', 'RequestLimitExceeded', { times: 3 });
      await expect(provider.list()).resolves.toEqual([]);
      const calls = fake.calls('DescribeInstances');
      expect(calls.map((c) => c.status)).toEqual([503, 503, 503, 200]);
      const gaps = calls.slice(1).map((c, i) => c.atMs - (calls[i]?.atMs ?? 0));
      // base 10 ms, doubled each time; the SDK made no retries of its own (one request per attempt).
      expect(gaps.map((gap, i) => gap >= 10 * 2 ** i - 1)).toEqual([true, true, true]);
    });

    it('becomes ThrottledError after the last retry', async () => {
      const { provider, fake } = await setup({}, single);
      fake.failNext('RunInstances', 'RequestLimitExceeded', { times: 100 });
      const error = await provider
        .provision({ offeringId: A10G, count: 1, idempotencyKey: 'throttled' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ThrottledError);
      expect((error as ThrottledError).retryAfterMs).toBe(80);
      expect((error as ThrottledError).retried).toBe(true);
      expect(fake.calls('RunInstances')).toHaveLength(4);
      expect(fake.list()).toEqual([]);
    });
  });

  it('follows every page of the inventory and of the offerings', async () => {
    const { provider, fake } = await setup({ pageSize: 5 }, { pageSize: 5, regions: ['us-east-1'] });
    const launched = [
      ...(await provider.provision({
        offeringId: A10G,
        count: 6,
        idempotencyKey: 'p1',
        tags: { page: 'y' },
      })),
      ...(await provider.provision({
        offeringId: A10G,
        count: 6,
        idempotencyKey: 'p2',
        tags: { page: 'y' },
      })),
    ];
    const listed = await provider.list({ tags: { page: 'y' } });
    expect(listed.map((i) => i.id).sort()).toEqual(launched.map((i) => i.id).sort());
    const pages = fake.calls('DescribeInstances').filter((c) => c.params['Filter.2.Name'] === 'tag:page');
    expect(pages).toHaveLength(3);
    expect(pages.map((c) => c.params.MaxResults)).toEqual(['5', '5', '5']);
    expect(pages.slice(1).every((c) => c.params.NextToken)).toBe(true);

    const quotes = await provider.offerings();
    expect(quotes.filter((q) => q.available).length).toBeGreaterThan(5);
    expect(
      fake.calls('DescribeInstanceTypeOfferings').filter((c) => c.params.NextToken).length,
    ).toBeGreaterThan(1);
  });

  describe('idempotency', () => {
    it('provisions once for a key: EC2 saw one launch', async () => {
      const { provider, fake } = await setup();
      const request = { offeringId: A10G, count: 2, idempotencyKey: 'once', tags: { a: 'b' } };
      const first = await provider.provision(request);
      const again = await provider.provision({ ...request });
      expect(again.map((i) => i.id)).toEqual(first.map((i) => i.id));
      expect(fake.calls('RunInstances')).toHaveLength(1);
      expect(fake.list().filter((i) => i.tags['gpubroker:key'] === 'once')).toHaveLength(2);
    });

    it('after a crash, the same ClientToken gets the first launch back even before DescribeInstances shows it', async () => {
      const { fake, another } = await setup({ describeLagMs: 10_000 });
      const request = { offeringId: A10G, count: 1, idempotencyKey: 'crash-key' };
      const before = await (await another()).provision(request);
      const after = await (await another()).provision(request);
      expect(after.map((i) => i.id)).toEqual(before.map((i) => i.id));
      const runs = fake.calls('RunInstances');
      expect(runs).toHaveLength(2);
      expect(runs[1]?.params.ClientToken).toBe(runs[0]?.params.ClientToken);
      expect(fake.list()).toHaveLength(1);
    });

    it('keys longer than EC2 takes as a ClientToken are hashed to 64 characters', async () => {
      const { provider, fake } = await setup();
      const key = `k-${'x'.repeat(200)}`;
      const [instance] = await provider.provision({ offeringId: A10G, count: 1, idempotencyKey: key });
      expect(instance?.idempotencyKey).toBe(key);
      expect(fake.calls('RunInstances')[0]?.params.ClientToken).toHaveLength(64);
    });
  });

  describe('agent bootstrap (request.agent)', () => {
    const agent: AgentBootstrap = {
      brokerUrl: 'https://broker.example.com',
      joinToken: 'gbj_aws_0123456789abcdef',
      version: '1.2.3',
    };
    const decode = (base64: string | undefined) => Buffer.from(base64 ?? '', 'base64').toString('utf8');

    it('passes the start-up script as base64 UserData on RunInstances; the token is not on the agent command line', async () => {
      const { provider, fake } = await setup();
      const [instance] = await provider.provision({
        offeringId: A10G,
        count: 1,
        idempotencyKey: 'agent-1',
        agent,
      });
      const sent = fake.calls('RunInstances')[0]?.params.UserData;
      expect(sent).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
      const script = decode(sent);
      expect(script).toBe(agentStartupScript('aws', agent));
      expect(script.startsWith('#!/bin/bash\n')).toBe(true);
      const execStart = script.split('\n').find((l) => l.startsWith('ExecStart=')) ?? '';
      expect(execStart).toContain('gpubroker agent --broker https://broker.example.com ');
      expect(execStart).toContain('--instance-id-from aws');
      expect(execStart).toContain('--token-file /etc/gpubroker/join-token');
      expect(execStart).not.toContain(agent.joinToken);
      // What EC2 stored for the instance.
      expect(decode(fake.list().find((i) => i.id === instance?.id)?.userData)).toBe(script);
    });

    it('passes no UserData without it', async () => {
      const { provider, fake } = await setup();
      await provider.provision({ offeringId: A10G, count: 1, idempotencyKey: 'no-agent' });
      expect(fake.calls('RunInstances')[0]?.params).not.toHaveProperty('UserData');
      expect(fake.list()[0]?.userData).toBeUndefined();
    });

    it('a repeated launch under the same key sends the same script, and EC2 answers with the first launch', async () => {
      const { fake, another } = await setup({ describeLagMs: 10_000 });
      const request = { offeringId: A10G, count: 1, idempotencyKey: 'agent-crash', agent };
      const before = await (await another()).provision(request);
      const after = await (await another()).provision({ ...request, agent: { ...agent } });
      expect(after.map((i) => i.id)).toEqual(before.map((i) => i.id));
      const runs = fake.calls('RunInstances');
      expect(runs).toHaveLength(2);
      expect(runs.map((r) => r.status)).toEqual([200, 200]);
      expect(runs[1]?.params.UserData).toBe(runs[0]?.params.UserData);
      expect(runs[1]?.params.ClientToken).toBe(runs[0]?.params.ClientToken);
      expect(fake.list()).toHaveLength(1);
    });

    it('refuses a bootstrap it cannot pass safely, before calling EC2', async () => {
      const { provider, fake } = await setup();
      const bad = provider.provision({
        offeringId: A10G,
        count: 1,
        idempotencyKey: 'bad-agent',
        agent: { ...agent, brokerUrl: 'https://broker.example.com/$(reboot)' },
      });
      await expect(bad).rejects.toBeInstanceOf(InvalidRequestError);
      await expect(bad).rejects.toMatchObject({ field: 'agent.brokerUrl' });
      expect(fake.calls('RunInstances')).toHaveLength(0);
    });
  });

  it('finds the instances it owns by tag after a crash, and only those', async () => {
    const { provider, another } = await setup();
    const launched = await provider.provision({
      offeringId: A10G,
      count: 2,
      idempotencyKey: 'orphans',
      tags: { team: 'x' },
    });
    await provider.close();

    const restarted = await another();
    const seen: ProviderEvent[] = [];
    const stop = new AbortController();
    const reader = (async () => {
      for await (const e of restarted.events({ signal: stop.signal })) seen.push(e);
    })();
    const found = await restarted.list({ tags: { team: 'x' } });
    expect(found.map((i) => i.id).sort()).toEqual(launched.map((i) => i.id).sort());
    for (const i of found)
      expect(i).toMatchObject({ offeringId: A10G, idempotencyKey: 'orphans', tags: { team: 'x' } });
    await waitUntil(() =>
      launched.every((i) =>
        seen.some((e) => e.kind === 'state-changed' && e.instanceId === i.id && e.from === null),
      ),
    );
    stop.abort();
    await reader;

    const stranger = await another({ brokerId: 'someone-else' });
    expect(await stranger.list()).toEqual([]);
  });

  it('publishes the spot interruption notice, then the reclaim as preempted', async () => {
    const { provider, fake, events } = await setup();
    const [instance] = await provider.provision({ offeringId: A10G_SPOT, count: 1, idempotencyKey: 'spot' });
    const id = instance?.id ?? '';
    await waitUntil(async () => (await provider.list()).some((i) => i.id === id && i.state === 'running'));
    const noticeAt = clock.now();
    fake.interruptSpot(id);
    await waitUntil(() => events.some((e) => e.kind === 'interruption-notice' && e.instanceId === id));
    const notice = events.find((e) => e.kind === 'interruption-notice');
    expect(notice).toMatchObject({ offeringId: A10G_SPOT, zone: instance?.zone });
    const terminateAt = notice?.kind === 'interruption-notice' ? notice.terminateAtMs : 0;
    expect(terminateAt - noticeAt).toBeGreaterThanOrEqual(119_000);
    expect(terminateAt - noticeAt).toBeLessThanOrEqual(121_000);

    await waitUntil(() =>
      events.some((e) => e.kind === 'state-changed' && e.instanceId === id && e.to === 'terminated'),
    );
    const ended = events.filter((e) => e.kind === 'state-changed' && e.instanceId === id).at(-1);
    expect(ended).toMatchObject({ to: 'terminated', reason: 'preempted' });
    const [listed] = await provider.list({ includeTerminated: true });
    expect(listed).toMatchObject({
      state: 'terminated',
      terminationReason: 'preempted',
      interruptAtMs: terminateAt,
    });
  });

  it('reports an instance that died on its own as a failure, then terminated (failed)', async () => {
    const { provider, fake, events } = await setup();
    const [instance] = await provider.provision({ offeringId: A10G, count: 1, idempotencyKey: 'dies' });
    const id = instance?.id ?? '';
    await waitUntil(() =>
      events.some((e) => e.kind === 'state-changed' && e.instanceId === id && e.to === 'running'),
    );
    fake.failInstance(id);
    await waitUntil(() =>
      events.some((e) => e.kind === 'state-changed' && e.instanceId === id && e.to === 'terminated'),
    );
    const mine = events
      .filter((e) => 'instanceId' in e && e.instanceId === id)
      .map((e) => [e.kind, 'to' in e ? e.to : '']);
    expect(mine).toEqual([
      ['state-changed', 'pending'],
      ['state-changed', 'running'],
      ['state-changed', 'terminating'],
      ['failure', ''],
      ['state-changed', 'terminated'],
    ]);
    expect(events.find((e) => e.kind === 'failure')).toMatchObject({
      region: 'us-east-1',
      zone: instance?.zone,
    });
    expect(events.at(-1)).toMatchObject({ reason: 'failed' });
  });

  it('takes an instance gone from the inventory as terminated', async () => {
    const { provider, events } = await setup({ terminatedVisibleMs: 0 }, { vanishedAfterMs: 100 });
    const [instance] = await provider.provision({ offeringId: A10G, count: 1, idempotencyKey: 'gone' });
    const id = instance?.id ?? '';
    await provider.terminate([id]);
    await waitUntil(() =>
      events.some((e) => e.kind === 'state-changed' && e.instanceId === id && e.to === 'terminated'),
    );
    expect(events.filter((e) => e.kind === 'state-changed' && e.instanceId === id).at(-1)).toMatchObject({
      from: 'terminating',
      reason: 'requested',
    });
  });

  it('stops polling on close', async () => {
    const { provider, fake } = await setup();
    await waitUntil(() => fake.calls('DescribeInstances').length >= 2);
    await provider.close();
    const count = fake.requests.length;
    await clock.sleep(100);
    expect(fake.requests.length).toBe(count);
    await expect(provider.list()).rejects.toBeInstanceOf(ProviderUnavailableError);
  });

  describe('start', () => {
    it('refuses bad options with a ValidationError naming the option', async () => {
      const base = {
        clock,
        regions: ['us-east-1'],
        launch: { imageId: IMAGE },
        credentials: CREDENTIALS,
        endpoint: 'http://127.0.0.1:9',
      };
      await expect(createAwsProvider({ ...base, regions: [] })).rejects.toThrow(ValidationError);
      await expect(createAwsProvider({ ...base, regions: ['mars-north-1'] })).rejects.toThrow(/aws.regions/);
      await expect(createAwsProvider({ ...base, launch: {} })).rejects.toThrow(/imageId/);
      await expect(createAwsProvider({ ...base, pageSize: 2 })).rejects.toThrow(/aws.pageSize/);
      await expect(createAwsProvider({ ...base, pricingEndpoint: 'pricing' })).rejects.toThrow(
        /aws.pricingEndpoint/,
      );
      await expect(createAwsProvider({ ...base, priceRefreshMs: 0 })).rejects.toThrow(/aws.priceRefreshMs/);
    });

    it('refused credentials: one ProviderUnavailableError naming the cause', async () => {
      const { endpoint } = await setup();
      const error = await createAwsProvider({
        clock,
        regions: ['us-east-1'],
        launch: { imageId: IMAGE },
        credentials: { accessKeyId: 'AKIDWRONG', secretAccessKey: 'x' },
        endpoint,
        offerings: catalog,
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderUnavailableError);
      expect((error as Error).message).toMatch(/AuthFailure/);
    });

    it('no credentials in the standard chain: one ProviderUnavailableError, and no request sent', async () => {
      const { endpoint, fake } = await setup();
      const sent = fake.requests.length;
      const saved = { ...process.env };
      for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name];
      // Nowhere to find credentials, and no instance metadata service to ask (nothing may leave 127.0.0.1).
      const nowhere = join(tmpdir(), 'gpubroker-no-aws-config');
      process.env.AWS_SHARED_CREDENTIALS_FILE = join(nowhere, 'credentials');
      process.env.AWS_CONFIG_FILE = join(nowhere, 'config');
      process.env.AWS_EC2_METADATA_DISABLED = 'true';
      try {
        const error = await createAwsProvider({
          clock,
          regions: ['us-east-1'],
          launch: { imageId: IMAGE },
          endpoint,
          offerings: catalog,
        }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ProviderUnavailableError);
        expect((error as Error).message).toMatch(/no AWS credentials/);
        expect(fake.requests.length).toBe(sent);
      } finally {
        for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
        Object.assign(process.env, saved);
      }
    });
  });

  describe('settings from the environment', () => {
    it('reads regions and launch settings, per region or for all', () => {
      const options = awsOptionsFromEnv({
        GPUBROKER_AWS_REGIONS: 'us-east-1, us-west-2',
        GPUBROKER_AWS_IMAGE_ID: 'us-east-1=ami-0123456789abcdef0,us-west-2=ami-0fedcba9876543210',
        GPUBROKER_AWS_LAUNCH_TEMPLATE: 'gpu-nodes:3',
        GPUBROKER_AWS_SUBNETS: 'us-east-1a=subnet-0aaaaaaaaaaaaaaa1',
        GPUBROKER_AWS_SECURITY_GROUPS: 'sg-0bbbbbbbbbbbbbbb2,us-west-2=sg-0ccccccccccccccc3',
        GPUBROKER_AWS_BROKER_ID: 'fleet-1',
        GPUBROKER_AWS_POLL_MS: '10000',
        GPUBROKER_AWS_PRICING_ENDPOINT: 'https://pricing.example.com',
      });
      expect(options).toEqual({
        regions: ['us-east-1', 'us-west-2'],
        launchByRegion: {
          'us-east-1': {
            imageId: 'ami-0123456789abcdef0',
            launchTemplate: { name: 'gpu-nodes', version: '3' },
            subnetIds: { 'us-east-1a': 'subnet-0aaaaaaaaaaaaaaa1' },
            securityGroupIds: ['sg-0bbbbbbbbbbbbbbb2'],
          },
          'us-west-2': {
            imageId: 'ami-0fedcba9876543210',
            launchTemplate: { name: 'gpu-nodes', version: '3' },
            securityGroupIds: ['sg-0bbbbbbbbbbbbbbb2', 'sg-0ccccccccccccccc3'],
          },
        },
        brokerId: 'fleet-1',
        pollIntervalMs: 10_000,
        pricingEndpoint: 'https://pricing.example.com',
      });
    });

    it('names the variable that is wrong', () => {
      expect(() => awsOptionsFromEnv({})).toThrow(/GPUBROKER_AWS_REGIONS/);
      const regions = { GPUBROKER_AWS_REGIONS: 'us-east-1' };
      expect(() => awsOptionsFromEnv({ ...regions, GPUBROKER_AWS_SUBNETS: 'eu-west-1a=subnet-1' })).toThrow(
        /GPUBROKER_AWS_SUBNETS/,
      );
      expect(() =>
        awsOptionsFromEnv({ ...regions, GPUBROKER_AWS_IMAGE_ID: 'ami-1,us-east-1=ami-2' }),
      ).toThrow(/GPUBROKER_AWS_IMAGE_ID/);
      expect(() => awsOptionsFromEnv({ ...regions, GPUBROKER_AWS_POLL_MS: 'soon' })).toThrow(
        /GPUBROKER_AWS_POLL_MS/,
      );
    });

    it('gives options the factory takes', async () => {
      const { endpoint } = await setup();
      const provider = await createAwsProvider({
        clock,
        credentials: CREDENTIALS,
        offerings: catalog,
        ...awsOptionsFromEnv({
          GPUBROKER_AWS_REGIONS: 'us-west-2',
          GPUBROKER_AWS_IMAGE_ID: IMAGE,
          GPUBROKER_AWS_ENDPOINT: endpoint,
        }),
      });
      try {
        const [instance] = await provider.provision({
          offeringId: 'aws/us-west-2/g5.xlarge/on-demand',
          count: 1,
          idempotencyKey: 'from-env',
        });
        expect(instance?.region).toBe('us-west-2');
      } finally {
        await provider.close();
      }
    });
  });
});
