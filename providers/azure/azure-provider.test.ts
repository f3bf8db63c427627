/**
 * The Azure adapter against a wire-level fake of ARM (testing/fake-arm.ts): the real `@azure/arm-compute` client
 * speaks HTTPS to 127.0.0.1 with a static bearer token, so no request leaves this machine and no Entra ID call is made.
 */
import type { TokenCredential } from '@azure/identity';
import { afterEach, describe, expect, it } from 'vitest';
import { type Clock, RealClock, type TimerHandle } from '../../lib/clock.ts';
import { ValidationError } from '../../lib/errors.ts';
import { type AgentBootstrap, agentStartupScript } from '../agent-bootstrap.ts';
import { describeProviderContract } from '../provider.contract.ts';
import type { Instance, ProviderEvent } from '../provider.ts';
import {
  InsufficientCapacityError,
  InvalidRequestError,
  ProviderUnavailableError,
  QuotaExceededError,
  ThrottledError,
} from '../provider-errors.ts';
import { azureOptionsFromEnv } from './azure-options.ts';
import { type AzureProvider, type AzureProviderOptions, createAzureProvider } from './azure-provider.ts';
import { FAKE_ARM_CA, FakeArm, type FakeArmOptions } from './testing/fake-arm.ts';
import { FakeRetailPrices, vmPriceItems } from './testing/fake-retail-prices.ts';

const SUBSCRIPTION = '00000000-1111-2222-3333-444444444444';
const GROUP = 'gpubroker-test';
const TOKEN = 'static-test-token';
const SUBNET = `/subscriptions/${SUBSCRIPTION}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default`;
const SSH_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJq2ZpY2Fr3Q1Yv2c6yR7cTKE2m4fXr0b4c7eJ0sQ1aB test@gpubroker';

const NC24 = 'azure/eastus/Standard_NC24ads_A100_v4/on-demand';
const NC24_SPOT = 'azure/eastus/Standard_NC24ads_A100_v4/spot';
const NC48 = 'azure/eastus/Standard_NC48ads_A100_v4/on-demand';
const ND96 = 'azure/eastus/Standard_ND96asr_v4/on-demand';
const ZONES = ['1', '2', '3'];

const staticToken = (token = TOKEN): TokenCredential => ({
  getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3_600_000 }),
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function fakeOptions(overrides: Partial<FakeArmOptions> = {}): FakeArmOptions {
  return {
    subscriptionId: SUBSCRIPTION,
    resourceGroup: GROUP,
    token: TOKEN,
    skus: [
      {
        name: 'Standard_NC24ads_A100_v4',
        family: 'standardNCADSA100v4Family',
        vcpus: 24,
        locations: { eastus: ZONES },
      },
      {
        name: 'Standard_NC48ads_A100_v4',
        family: 'standardNCADSA100v4Family',
        vcpus: 48,
        locations: { eastus: ZONES },
        restrictedZones: { eastus: ['3'] },
      },
      {
        name: 'Standard_ND96asr_v4',
        family: 'standardNDASv4_A100Family',
        vcpus: 96,
        locations: { eastus: ZONES },
      },
    ],
    capacity: [{ vmSize: 'Standard_NC24ads_A100_v4', location: 'eastus', spot: false, count: 3 }],
    quotas: [
      {
        location: 'eastus',
        name: 'Standard NDASv4_A100 Family vCPUs',
        family: 'standardNDASv4_A100Family',
        limit: 96,
      },
    ],
    allocationDelayMs: 30,
    bootDelayMs: 150,
    deleteDelayMs: 40,
    pageSize: 5,
    ...overrides,
  };
}

const running: { fake: FakeArm; providers: AzureProvider[] }[] = [];

async function setup(
  fakeOverrides: Partial<FakeArmOptions> = {},
  providerOverrides: Partial<AzureProviderOptions> = {},
): Promise<{
  fake: FakeArm;
  provider: AzureProvider;
  open: (o?: Partial<AzureProviderOptions>) => Promise<AzureProvider>;
}> {
  const fake = new FakeArm(fakeOptions(fakeOverrides));
  const endpoint = await fake.start();
  const entry = { fake, providers: [] as AzureProvider[] };
  running.push(entry);
  const open = async (o: Partial<AzureProviderOptions> = {}) => {
    const provider = await createAzureProvider({
      subscriptionId: SUBSCRIPTION,
      resourceGroup: GROUP,
      regions: { eastus: { subnetId: SUBNET } },
      sshPublicKey: SSH_KEY,
      brokerId: 'fleet-test',
      credential: staticToken(),
      endpoint,
      tlsCa: FAKE_ARM_CA,
      pollIntervalMs: 50,
      operationPollIntervalMs: 15,
      throttle: { baseDelayMs: 10, maxDelayMs: 100 },
      ...providerOverrides,
      ...o,
    });
    entry.providers.push(provider);
    return provider;
  };
  return { fake, provider: await open(), open };
}

afterEach(async () => {
  for (const { fake, providers } of running.splice(0)) {
    for (const p of providers) await p.close();
    await fake.close();
  }
});

async function until(predicate: () => Promise<boolean> | boolean, maxMs = 5_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${maxMs} ms`);
    await sleep(20);
  }
}

function record(provider: AzureProvider): { events: ProviderEvent[]; stop: () => void } {
  const events: ProviderEvent[] = [];
  const controller = new AbortController();
  void (async () => {
    for await (const e of provider.events({ signal: controller.signal })) events.push(e);
  })();
  return { events, stop: () => controller.abort() };
}

/** Wall time, but `sleep` returns at once and is recorded: the backoff the adapter chose, without waiting for it. */
class RecordingClock implements Clock {
  readonly sleeps: number[] = [];
  private readonly real = new RealClock();
  now(): number {
    return this.real.now();
  }
  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
  }
  setTimer(atMs: number, callback: () => void): TimerHandle {
    return this.real.setTimer(atMs, callback);
  }
}

describeProviderContract('azure (fake ARM over HTTPS)', async () => {
  const fake = new FakeArm(fakeOptions());
  const endpoint = await fake.start();
  const provider = await createAzureProvider({
    subscriptionId: SUBSCRIPTION,
    resourceGroup: GROUP,
    regions: { eastus: { subnetId: SUBNET } },
    sshPublicKey: SSH_KEY,
    credential: staticToken(),
    endpoint,
    tlsCa: FAKE_ARM_CA,
    pollIntervalMs: 50,
    operationPollIntervalMs: 15,
    throttle: { baseDelayMs: 10, maxDelayMs: 100 },
  });
  return {
    provider,
    offeringId: NC24,
    capacity: 3,
    // The fake allocates in 50 ms, boots in 200 and deletes in 50 (polls every 50): a VM terminated while pending
    // has had 3 times its allocation and boot to come back after 1 s of real waiting. Waits for a state keep 2 s.
    settleMs: 1_000,
    async waitFor(predicate, maxMs) {
      const limitMs = Math.max(maxMs, 2_000);
      const deadline = Date.now() + limitMs;
      while (!(await predicate())) {
        if (Date.now() > deadline) throw new Error(`condition not met within ${limitMs} ms`);
        await sleep(25);
      }
    },
    elapse: (ms) => sleep(ms),
    exceedQuota: () => provider.provision({ offeringId: ND96, count: 2, idempotencyKey: 'quota' }),
    async dispose() {
      await provider.close();
      await fake.close();
    },
  };
});

describe('Azure adapter', () => {
  it('creates VMs with the offering, zone, tags and (for spot) Spot priority with eviction policy Delete', async () => {
    const { fake, provider } = await setup();
    const [vm] = await provider.provision({
      offeringId: NC24_SPOT,
      count: 1,
      idempotencyKey: 'spot-1',
      tags: { 'gpubroker-fleet': 'f1' },
      zone: 'eastus-2',
    });
    expect(vm?.zone).toBe('eastus-2');
    expect(vm?.capacityType).toBe('spot');
    expect(vm?.id).toMatch(
      new RegExp(
        `^/subscriptions/${SUBSCRIPTION}/resourceGroups/${GROUP}/providers/Microsoft.Compute/virtualMachines/gpb-[0-9a-f]{16}-0$`,
      ),
    );
    const [stored] = fake.virtualMachines();
    expect(stored?.zone).toBe('2');
    expect(stored?.tags).toMatchObject({
      'gpubroker-fleet': 'f1',
      'gpubroker:broker': 'fleet-test',
      'gpubroker:offering': NC24_SPOT,
      'gpubroker:key': 'spot-1',
    });
    expect(stored?.properties).toMatchObject({
      hardwareProfile: { vmSize: 'Standard_NC24ads_A100_v4' },
      priority: 'Spot',
      evictionPolicy: 'Delete',
      billingProfile: { maxPrice: -1 },
      networkProfile: { networkInterfaceConfigurations: [{ properties: { deleteOption: 'Delete' } }] },
    });
    expect(vm?.tags).toEqual({ 'gpubroker-fleet': 'f1' });
    // A long-running operation: 201 + Azure-AsyncOperation, polled until Succeeded, then the VM is read.
    expect(fake.requests.find((r) => r.method === 'PUT')?.status).toBe(201);
    expect(fake.count('GET', '/operations/')).toBeGreaterThan(0);
  });

  it('reports a Spot eviction (the VM goes away) as terminated, reason preempted', async () => {
    const { fake, provider } = await setup();
    const { events, stop } = record(provider);
    const [vm] = await provider.provision({ offeringId: NC24_SPOT, count: 1, idempotencyKey: 'evict-me' });
    const id = (vm as Instance).id;
    await until(async () => (await provider.list()).some((i) => i.id === id && i.state === 'running'));
    fake.evict(id.split('/').at(-1) as string);
    await until(() =>
      events.some((e) => e.kind === 'state-changed' && e.instanceId === id && e.to === 'terminated'),
    );
    stop();
    const ended = events.find(
      (e) => e.kind === 'state-changed' && e.instanceId === id && e.to === 'terminated',
    );
    // Whether the Deleting phase is seen depends on the poll; either way the end is a preemption.
    expect(ended).toMatchObject({ reason: 'preempted' });
    expect(['running', 'terminating']).toContain(ended?.kind === 'state-changed' ? ended.from : undefined);
    expect(events.some((e) => e.kind === 'interruption-notice')).toBe(false);
    const [gone] = await provider.list({ includeTerminated: true });
    expect(gone).toMatchObject({ id, state: 'terminated', terminationReason: 'preempted' });
  });

  describe('errors', () => {
    it('maps SkuNotAvailable (a size restricted in a zone) to InsufficientCapacityError', async () => {
      const { provider } = await setup();
      const offers = await provider.offerings();
      expect(offers.find((o) => o.id === NC48)?.availableZones).toEqual(['eastus-1', 'eastus-2']);
      const error = await provider
        .provision({ offeringId: NC48, count: 1, idempotencyKey: 'sku', zone: 'eastus-3' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InsufficientCapacityError);
      expect((error as Error).message).toContain('SkuNotAvailable');
    });

    it.each([['AllocationFailed'], ['ZonalAllocationFailed'], ['OverconstrainedAllocationRequest']])(
      'maps %s (the operation ends Failed) to InsufficientCapacityError and rolls the call back',
      async (code) => {
        const { fake, provider } = await setup();
        fake.failAllocations({ code, message: `${code}: no capacity (test)`, times: 3 });
        const error = await provider
          .provision({ offeringId: NC48, count: 3, idempotencyKey: `alloc-${code}`, zone: 'eastus-1' })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InsufficientCapacityError);
        expect((error as InsufficientCapacityError).offeringId).toBe(NC48);
        expect((error as Error).message).toContain(code);
        expect(fake.virtualMachines()).toEqual([]);
        expect(await provider.list({ includeTerminated: true })).toEqual([]);
      },
    );

    it('rolls back the VMs already created when one of the count fails', async () => {
      const { fake, provider } = await setup({
        capacity: [{ vmSize: 'Standard_NC48ads_A100_v4', location: 'eastus', zone: '1', count: 2 }],
      });
      const error = await provider
        .provision({ offeringId: NC48, count: 3, idempotencyKey: 'partial', zone: 'eastus-1' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InsufficientCapacityError);
      expect(fake.created).toBe(3);
      expect(fake.virtualMachines()).toEqual([]);
    });

    it('tries the next zone when the first has no capacity, and then reports that zone unavailable', async () => {
      const { fake, provider } = await setup({
        capacity: [{ vmSize: 'Standard_NC48ads_A100_v4', location: 'eastus', zone: '1', count: 0 }],
      });
      const [vm] = await provider.provision({ offeringId: NC48, count: 1, idempotencyKey: 'fallback' });
      expect(vm?.zone).toBe('eastus-2');
      expect(fake.virtualMachines().map((v) => v.zone)).toEqual(['2']);
      const offer = (await provider.offerings()).find((o) => o.id === NC48);
      expect(offer?.availableZones).toEqual(['eastus-2']);
    });

    it('maps the vCPU quota error (OperationNotAllowed) to QuotaExceededError with limit and request', async () => {
      const { fake, provider } = await setup();
      const error = await provider
        .provision({ offeringId: ND96, count: 2, idempotencyKey: 'quota' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(QuotaExceededError);
      expect(error).toMatchObject({ quota: 'Standard NDASv4_A100 Family vCPUs', limit: 96, requested: 96 });
      expect(fake.virtualMachines()).toEqual([]);
    });

    it('maps QuotaExceeded to QuotaExceededError', async () => {
      const { fake, provider } = await setup();
      fake.inject({
        method: 'PUT',
        status: 409,
        code: 'QuotaExceeded',
        message:
          'Operation results in exceeding quota limits of Core. Maximum allowed: 4, Current in use: 4, Additional requested: 24.',
      });
      const error = await provider
        .provision({ offeringId: NC24, count: 1, idempotencyKey: 'q2' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(QuotaExceededError);
      expect(error).toMatchObject({ quota: 'Core', limit: 4, requested: 24 });
    });

    it('maps 5xx to ProviderUnavailableError and 403 to ProviderUnavailableError naming the cause', async () => {
      const { fake, provider } = await setup();
      fake.inject({
        method: 'GET',
        path: '/virtualMachines',
        status: 503,
        code: 'ServiceUnavailable',
        message: 'down',
      });
      await expect(provider.list()).rejects.toBeInstanceOf(ProviderUnavailableError);
      fake.inject({
        method: 'GET',
        path: '/virtualMachines',
        status: 403,
        code: 'AuthorizationFailed',
        message:
          "The client does not have authorization to perform action 'Microsoft.Compute/virtualMachines/read'.",
      });
      const error = await provider.list().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderUnavailableError);
      expect((error as Error).message).toContain('not authorized (AuthorizationFailed)');
    });

    it('fails at start with ProviderUnavailableError when the token is refused (401)', async () => {
      const { open } = await setup();
      const error = await open({ credential: staticToken('wrong-token') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderUnavailableError);
      expect((error as Error).message).toMatch(
        /cannot use resource group gpubroker-test .*authentication failed \(InvalidAuthenticationToken\)/,
      );
    });

    it('fails at start with ProviderUnavailableError when the credential cannot get a token', async () => {
      const { open } = await setup();
      const noCredential: TokenCredential = {
        getToken: async () => {
          const error = new Error('EnvironmentCredential is unavailable. No credential in the chain worked.');
          error.name = 'CredentialUnavailableError';
          throw error;
        },
      };
      const error = await open({ credential: noCredential }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderUnavailableError);
      expect((error as Error).message).toContain('no usable Azure credentials');
    });

    it('fails at start with ProviderUnavailableError when the resource group does not exist', async () => {
      const { open } = await setup();
      const error = await open({ resourceGroup: 'missing-group' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderUnavailableError);
      expect((error as Error).message).toContain('ResourceGroupNotFound');
    });

    it('fails at start with ProviderUnavailableError when the endpoint does not answer', async () => {
      const error = await createAzureProvider({
        subscriptionId: SUBSCRIPTION,
        resourceGroup: GROUP,
        regions: { eastus: { subnetId: SUBNET } },
        sshPublicKey: SSH_KEY,
        credential: staticToken(),
        endpoint: 'https://127.0.0.1:1',
        tlsCa: FAKE_ARM_CA,
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderUnavailableError);
      expect((error as Error).message).toContain('ECONNREFUSED');
    });

    it('refuses incomplete configuration with one ValidationError naming the option', async () => {
      const base = {
        subscriptionId: SUBSCRIPTION,
        resourceGroup: GROUP,
        regions: { eastus: { subnetId: SUBNET } },
        sshPublicKey: SSH_KEY,
        credential: staticToken(),
        endpoint: 'https://127.0.0.1:9',
      };
      const cases: [Partial<AzureProviderOptions>, string][] = [
        [{ subscriptionId: '' }, 'azure.subscriptionId'],
        [{ resourceGroup: '' }, 'azure.resourceGroup'],
        [{ regions: {} }, 'azure.regions'],
        [{ regions: { mars: { subnetId: SUBNET } } }, 'azure.regions.mars'],
        [{ regions: { eastus: { subnetId: 'subnet-1' } } }, 'azure.regions.eastus.subnetId'],
        [{ sshPublicKey: '' }, 'azure.sshPublicKey'],
        [{ pricesEndpoint: 'prices.azure.com' }, 'azure.pricesEndpoint'],
        [{ priceRefreshMs: 0 }, 'azure.priceRefreshMs'],
      ];
      for (const [override, field] of cases) {
        const error = await createAzureProvider({ ...base, ...override }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ValidationError);
        expect((error as ValidationError).field).toBe(field);
      }
    });

    it('refuses tags Azure cannot store, and the adapter prefix', async () => {
      const { fake, provider } = await setup();
      const refused: Record<string, string>[] = [
        { 'a/b': 'x' },
        { 'gpubroker:broker': 'x' },
        { 'x?': 'y' },
        { A: '1', a: '2' },
        { azureThing: 'x' },
      ];
      for (const tags of refused) {
        const error = await provider
          .provision({ offeringId: NC24, count: 1, idempotencyKey: 'tags', tags })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidRequestError);
      }
      expect(fake.count('PUT', '/virtualMachines/')).toBe(0);
    });
  });

  describe('throttling', () => {
    it('honours Retry-After (seconds) on 429 and then succeeds', async () => {
      const clock = new RecordingClock();
      const { fake, provider } = await setup({}, { clock, pollIntervalMs: 600_000 });
      fake.inject({
        method: 'GET',
        path: '/virtualMachines',
        status: 429,
        code: 'TooManyRequests',
        message: 'The request is being throttled.',
        headers: { 'retry-after': '3' },
        times: 2,
      });
      await expect(provider.list()).resolves.toEqual([]);
      expect(clock.sleeps).toEqual([3_000, 3_000]);
    });

    it('backs off exponentially and gives up with ThrottledError', async () => {
      const clock = new RecordingClock();
      const { fake, provider } = await setup(
        {},
        { clock, pollIntervalMs: 600_000, throttle: { maxRetries: 4 } },
      );
      fake.inject({ method: 'GET', status: 429, code: 'TooManyRequests', message: 'throttled', times: 100 });
      const error = await provider.offerings().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ThrottledError);
      expect(clock.sleeps).toEqual([500, 1_000, 2_000, 4_000]);
      expect((error as ThrottledError).retryAfterMs).toBe(8_000);
      // Retried here already: the broker does not retry it again.
      expect((error as ThrottledError).retried).toBe(true);
      expect(fake.count('GET', '/skus')).toBe(5);
    });

    it('asks again for a throttled page, not for the whole list', async () => {
      const { fake, provider } = await setup();
      await provider.provision({ offeringId: NC48, count: 7, idempotencyKey: 'pages' });
      const before = fake.count('GET', '/virtualMachines');
      fake.inject({
        method: 'GET',
        path: '/virtualMachines',
        query: '$skiptoken=5',
        status: 429,
        code: 'TooManyRequests',
        message: 'throttled',
      });
      expect(await provider.list()).toHaveLength(7);
      expect(fake.count('GET', '/virtualMachines') - before).toBeGreaterThanOrEqual(3);
      expect(fake.requests.filter((r) => r.status === 429)).toHaveLength(1);
    });

    it('survives a throttled poll of a long-running operation', async () => {
      const { fake, provider } = await setup();
      fake.inject({
        method: 'GET',
        path: '/operations/',
        status: 429,
        code: 'TooManyRequests',
        message: 'throttled',
        times: 2,
      });
      const instances = await provider.provision({ offeringId: NC48, count: 2, idempotencyKey: 'lro-429' });
      expect(instances).toHaveLength(2);
      expect(fake.virtualMachines().map((v) => v.provisioningState)).toEqual(['Succeeded', 'Succeeded']);
      expect(fake.requests.filter((r) => r.status === 429 && r.path.includes('/operations/'))).toHaveLength(
        2,
      );
    });
  });

  describe('prices from the Retail Prices API', () => {
    const retail: FakeRetailPrices[] = [];
    afterEach(async () => {
      for (const r of retail.splice(0)) await r.close();
    });

    /** The ARM fake and, beside it, a Retail Prices API with NC24ads A100 v4 in eastus at $3.12345 ($0.987654 spot). */
    async function priced(options: Partial<AzureProviderOptions> = {}, pageSize = 2) {
      const prices = await FakeRetailPrices.start({
        items: vmPriceItems('eastus', 'Standard_NC24ads_A100_v4', 3.12345, 0.987654),
        pageSize,
      });
      retail.push(prices);
      const logs: { fields: Record<string, unknown>; message: string }[] = [];
      const { fake, open } = await setup();
      const provider = await open({
        pricesEndpoint: prices.url,
        log: { debug: (fields, message) => logs.push({ fields, message }) },
        ...options,
      });
      const price = async (id: string) =>
        (await provider.offerings()).find((q) => q.id === id)?.microsPerHour;
      return { fake, prices, provider, logs, price };
    }

    it('prices Linux on-demand and Spot hours, over every NextPageLink, and keeps the catalog price where none', async () => {
      const { prices, provider, logs } = await priced();
      const byId = new Map((await provider.offerings()).map((q) => [q.id, q.microsPerHour]));
      expect(byId.get(NC24)).toBe(3_123_450);
      expect(byId.get(NC24_SPOT)).toBe(987_654);
      // No items for NC48ads: the catalog's $7.346.
      expect(byId.get(NC48)).toBe(7_346_000);
      expect(logs).toContainEqual({
        fields: { vendor: 'azure', offerings: expect.arrayContaining([NC48]) },
        message: expect.stringMatching(/no price for these offerings/),
      });
      // NC24ads has 6 pay-as-you-go items (Linux, Windows, Low Priority ×2, Spot ×2; the query leaves out its
      // reservation), 2 a page: 3 pages.
      const nc24 = prices.requests.filter((r) =>
        r.filter.includes("armSkuName eq 'Standard_NC24ads_A100_v4'"),
      );
      expect(nc24.map((r) => r.skip)).toEqual([0, 2, 4]);
      expect(nc24[0]?.filter).toBe(
        "serviceName eq 'Virtual Machines' and armRegionName eq 'eastus' and armSkuName eq 'Standard_NC24ads_A100_v4' and priceType eq 'Consumption'",
      );
      const [vm] = await provider.provision({ offeringId: NC24, count: 1, idempotencyKey: 'retail-price' });
      expect(vm?.microsPerHour).toBe(3_123_450);
    });

    it('keeps the catalog price when the Retail Prices API fails, without failing offerings, and reads again later', async () => {
      const { prices, logs, price } = await priced({ priceRefreshMs: 200 });
      prices.failNext(500, 2);
      expect(await price(NC24)).toBe(3_673_000);
      expect(logs).toContainEqual({
        fields: { vendor: 'azure', err: expect.anything() },
        message: 'reading list prices failed; offerings keep the catalog prices',
      });
      await until(async () => (await price(NC24)) === 3_123_450);
    });

    it('publishes a price change after the prices are read again', async () => {
      const { prices, provider, price } = await priced({ priceRefreshMs: 300 });
      const { events } = record(provider);
      expect(await price(NC24_SPOT)).toBe(987_654);
      prices.put(...vmPriceItems('eastus', 'Standard_NC24ads_A100_v4', 3.12345, 0.5));
      await until(async () => (await price(NC24_SPOT)) === 500_000);
      const changes = () => events.filter((e) => e.kind === 'price-changed' && e.offeringId === NC24_SPOT);
      await until(() => changes().length > 0);
      expect(changes()).toEqual([expect.objectContaining({ vendor: 'azure', microsPerHour: 500_000 })]);
    });

    it('reads no prices when ARM has another endpoint and the Retail Prices API has none', async () => {
      const { open } = await setup();
      const logs: string[] = [];
      const provider = await open({ log: { debug: (_fields, message) => logs.push(message) } });
      expect((await provider.offerings()).find((q) => q.id === NC24)?.microsPerHour).toBe(3_673_000);
      expect(logs).toContain('live list prices are off; offerings keep the catalog prices');
    });

    it('reads the endpoint from GPUBROKER_AZURE_PRICES_ENDPOINT', () => {
      expect(azureOptionsFromEnv({ GPUBROKER_AZURE_PRICES_ENDPOINT: 'http://127.0.0.1:8080' })).toMatchObject(
        {
          pricesEndpoint: 'http://127.0.0.1:8080',
        },
      );
    });
  });

  it('follows nextLink through every page of the inventory', async () => {
    const { fake, provider } = await setup();
    const made = await provider.provision({ offeringId: NC48, count: 12, idempotencyKey: 'many' });
    const pagesBefore = fake.count('GET', '/virtualMachines');
    const listed = await provider.list();
    expect(listed.map((i) => i.id).sort()).toEqual(made.map((i) => i.id).sort());
    // 12 VMs at 5 per page: 3 page requests.
    expect(fake.count('GET', '/virtualMachines') - pagesBefore).toBeGreaterThanOrEqual(3);
  });

  it('provisions once per idempotency key, also across a restart (checked on the fake)', async () => {
    const { fake, provider, open } = await setup();
    const request = { offeringId: NC48, count: 2, idempotencyKey: 'once', tags: { role: 'a' } };
    const first = await provider.provision(request);
    const again = await provider.provision(request);
    expect(again.map((i) => i.id)).toEqual(first.map((i) => i.id));
    expect(fake.created).toBe(2);
    await provider.close();

    const restarted = await open();
    const afterRestart = await restarted.provision(request);
    expect(afterRestart.map((i) => i.id)).toEqual(first.map((i) => i.id));
    expect(fake.created).toBe(2);
    await expect(restarted.provision({ ...request, tags: { role: 'b' } })).rejects.toBeInstanceOf(
      InvalidRequestError,
    );
    const fresh = await open();
    await expect(fresh.provision({ ...request, count: 1 })).rejects.toBeInstanceOf(InvalidRequestError);
    expect(fake.created).toBe(2);
  });

  describe('agent bootstrap (request.agent)', () => {
    const agent: AgentBootstrap = {
      brokerUrl: 'https://broker.example.com',
      joinToken: 'gbj_azure_0123456789abcdef',
      version: '1.2.3',
    };
    const decode = (base64: string | undefined) => Buffer.from(base64 ?? '', 'base64').toString('utf8');
    const puts = (fake: FakeArm) => fake.requests.filter((r) => r.method === 'PUT').length;

    it('passes the start-up script as base64 osProfile.customData; the token is not on the agent command line', async () => {
      const { fake, provider } = await setup();
      await provider.provision({ offeringId: NC24, count: 2, idempotencyKey: 'agent-1', agent });
      const vms = fake.virtualMachines();
      expect(vms).toHaveLength(2);
      const script = agentStartupScript('azure', agent);
      for (const vm of vms) {
        expect(vm.customData).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
        expect(decode(vm.customData)).toBe(script);
        // ARM keeps it to itself: a GET of the VM does not show it.
        expect(vm.properties.osProfile).not.toHaveProperty('customData');
      }
      const execStart = script.split('\n').find((l) => l.startsWith('ExecStart=')) ?? '';
      expect(execStart).toContain('gpubroker agent --broker https://broker.example.com ');
      expect(execStart).toContain('--instance-id-from azure');
      expect(execStart).not.toContain(agent.joinToken);
    });

    it('passes no customData without it', async () => {
      const { fake, provider } = await setup();
      await provider.provision({ offeringId: NC24, count: 1, idempotencyKey: 'no-agent' });
      expect(fake.virtualMachines()[0]?.customData).toBeUndefined();
    });

    it('a repeat after a restart PUTs the same customData; another bootstrap for the key is refused, the VMs kept', async () => {
      const { fake, provider, open } = await setup();
      const request = { offeringId: NC24, count: 2, idempotencyKey: 'agent-restart', agent };
      const first = await provider.provision(request);
      await provider.close();
      const putsBefore = puts(fake);

      // The restarted adapter PUTs the same VMs again (idempotent by name); Azure refuses a changed customData.
      const restarted = await open();
      const again = await restarted.provision({ ...request, agent: { ...agent } });
      expect(again.map((i) => i.id)).toEqual(first.map((i) => i.id));
      expect(puts(fake)).toBe(putsBefore + 2);
      expect(fake.requests.filter((r) => r.method === 'PUT').every((r) => r.status < 400)).toBe(true);
      expect(fake.created).toBe(2);

      const other = await open();
      await expect(
        other.provision({ ...request, agent: { ...agent, joinToken: 'gbj_azure_another_token' } }),
      ).rejects.toMatchObject({ field: 'idempotencyKey' });
      expect(puts(fake)).toBe(putsBefore + 2);
      expect(fake.virtualMachines().map((vm) => decode(vm.customData))).toEqual([
        agentStartupScript('azure', agent),
        agentStartupScript('azure', agent),
      ]);
    });

    it('refuses a bootstrap it cannot pass safely, before calling Azure', async () => {
      const { fake, provider } = await setup();
      const bad = provider.provision({
        offeringId: NC24,
        count: 1,
        idempotencyKey: 'bad-agent',
        agent: { ...agent, version: 'latest' },
      });
      await expect(bad).rejects.toBeInstanceOf(InvalidRequestError);
      await expect(bad).rejects.toMatchObject({ field: 'agent.version' });
      expect(puts(fake)).toBe(0);
    });
  });

  it('finds its instances by tag after a crash, and not those of another broker', async () => {
    const { provider, open } = await setup();
    const made = await provider.provision({
      offeringId: NC48,
      count: 2,
      idempotencyKey: 'orphans',
      tags: { 'gpubroker-fleet': 'fleet-1', 'gpubroker-action': 'a-1' },
    });
    await provider.close();

    const successor = await open();
    const { events, stop } = record(successor);
    const found = await successor.list({ tags: { 'gpubroker-fleet': 'fleet-1' } });
    expect(found.map((i) => i.id).sort()).toEqual(made.map((i) => i.id).sort());
    for (const i of found)
      expect(i).toMatchObject({ offeringId: NC48, idempotencyKey: 'orphans', zone: made[0]?.zone });
    await until(async () => (await successor.list()).every((i) => i.state === 'running'));
    stop();
    expect(events.filter((e) => e.kind === 'state-changed' && e.from === null)).toHaveLength(2);
    const other = await open({ brokerId: 'another-broker' });
    expect(await other.list()).toEqual([]);
  });

  it('stops polling on close', async () => {
    const { fake, provider } = await setup();
    await sleep(200);
    await provider.close();
    const after = fake.count('GET', '/virtualMachines');
    await sleep(200);
    expect(fake.count('GET', '/virtualMachines')).toBe(after);
    await expect(provider.list()).rejects.toBeInstanceOf(ProviderUnavailableError);
  });
});
