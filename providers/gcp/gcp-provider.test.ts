import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RealClock } from '../../lib/clock.ts';
import { ValidationError } from '../../lib/errors.ts';
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
import {
  createGcpProvider,
  type GcpProvider,
  type GcpProviderOptions,
  gcpOptionsFromEnv,
} from './gcp-provider.ts';
import { labelKey, labelValue } from './labels.ts';
import { requestIdFor } from './request-ids.ts';
import type { FakeSku } from './testing/fake-billing-catalog.ts';
import { FakeCompute, type FakeComputeOptions } from './testing/fake-compute.ts';

const L4 = 'gcp/us-central1/g2-standard-4/on-demand';
const L4_SPOT = 'gcp/us-central1/g2-standard-4/spot';
const T4 = 'gcp/us-central1/n1-standard-4+1xT4/on-demand';
const OWNER = 'fleet-test';
const clock = new RealClock();

const AMERICAS = ['us-central1', 'us-east1', 'us-west1'];
const hourly = (
  description: string,
  resourceGroup: string,
  usageType: FakeSku['usageType'],
  usd: string,
  unit: FakeSku['unit'] = 'h',
): FakeSku => ({ description, resourceGroup, usageType, regions: AMERICAS, usd, unit });
/** Compute Engine SKUs for G2 + L4 (on-demand and spot) and N1 + T4 (on-demand), with SKUs that must not count. */
const SKUS: readonly FakeSku[] = [
  hourly('G2 Instance Core running in Americas', 'CPU', 'OnDemand', '0.024988'),
  hourly('G2 Instance Ram running in Americas', 'RAM', 'OnDemand', '0.002927', 'GiBy.h'),
  hourly('Nvidia L4 GPU running in Americas', 'GPU', 'OnDemand', '0.56004'),
  hourly('Spot Preemptible G2 Instance Core running in Americas', 'CPU', 'Preemptible', '0.009995'),
  hourly('Spot Preemptible G2 Instance Ram running in Americas', 'RAM', 'Preemptible', '0.001171', 'GiBy.h'),
  hourly('Nvidia L4 GPU attached to Spot Preemptible VMs running in Americas', 'GPU', 'Preemptible', '0.224'),
  hourly('N1 Predefined Instance Core running in Americas', 'N1Standard', 'OnDemand', '0.031611'),
  hourly('N1 Predefined Instance Ram running in Americas', 'N1Standard', 'OnDemand', '0.004237', 'GiBy.h'),
  hourly('Nvidia Tesla T4 GPU running in Americas', 'GPU', 'OnDemand', '0.35'),
  hourly('Commitment v1: G2 Cpu in Americas for 1 Year', 'CPU', 'Commit1Yr', '0.015743'),
  hourly('DWS Defined Duration Nvidia L4 GPU running in Americas', 'GPU', 'OnDemand', '0.41'),
  { ...hourly('Nvidia L4 GPU running in EMEA', 'GPU', 'OnDemand', '0.61'), regions: ['europe-west4'] },
];
/** What the SKUs above make of the offerings (vCPUs × core + GiB × RAM + GPUs × GPU, in micro-USD). */
const SKU_PRICES = {
  [L4]: 706_824, // 4 × 0.024988 + 16 × 0.002927 + 0.56004
  [L4_SPOT]: 282_716, // 4 × 0.009995 + 16 × 0.001171 + 0.224
  [T4]: 539_999, // 4 × 0.031611 + 15 × 0.004237 + 0.35
};

/** Every socket this file opens, with where it went: nothing may leave 127.0.0.1 (no token or metadata server). */
const destinations: string[] = [];
const onSocket = (message: unknown) => {
  const socket = (message as { socket: Socket }).socket;
  socket.once('lookup', (_error, _address, _family, host) => destinations.push(`lookup ${host}`));
  socket.once('connect', () => destinations.push(socket.remoteAddress ?? 'unknown'));
};
beforeAll(() => subscribe('net.client.socket', onSocket));
afterAll(() => unsubscribe('net.client.socket', onSocket));

/** A credential holding a fixed access token: google-auth-library's own client, never refreshing. */
function tokenClient(token: string): OAuth2Client {
  const client = new OAuth2Client();
  client.setCredentials({ access_token: token });
  return client;
}

async function startFake(options: FakeComputeOptions = {}): Promise<FakeCompute> {
  return FakeCompute.start({
    clock,
    bootDelayMs: 150,
    stopDelayMs: 60,
    operationDelayMs: 15,
    pageSize: 5,
    waitTimeoutMs: 500,
    ...options,
  });
}

function connect(fake: FakeCompute, options: Partial<GcpProviderOptions> = {}): Promise<GcpProvider> {
  return createGcpProvider({
    clock,
    project: fake.project,
    regions: ['us-central1'],
    owner: OWNER,
    authClient: tokenClient(fake.token),
    endpoint: fake.endpoint,
    pollIntervalMs: 40,
    operationPollMs: 10,
    backoff: { attempts: 4, baseDelayMs: 20, maxDelayMs: 200 },
    seed: 1,
    ...options,
  });
}

async function waitFor(predicate: () => Promise<boolean> | boolean, maxMs = 3_000): Promise<void> {
  const deadline = clock.now() + maxMs;
  while (!(await predicate())) {
    if (clock.now() > deadline) throw new Error(`condition not met within ${maxMs} ms`);
    await clock.sleep(15);
  }
}

function record(provider: GcpProvider): { events: ProviderEvent[]; stop: () => void } {
  const events: ProviderEvent[] = [];
  const controller = new AbortController();
  void (async () => {
    for await (const event of provider.events({ signal: controller.signal })) events.push(event);
  })();
  return { events, stop: () => controller.abort() };
}

describeProviderContract('gcp (fake Compute Engine over REST)', async (): Promise<ContractHarness> => {
  const fake = await startFake({
    capacity: [{ machineType: 'g2-standard-4', provisioningModel: 'STANDARD', max: 3 }],
    quotas: [{ metric: 'PREEMPTIBLE_NVIDIA_L4_GPUS', region: 'us-central1', limit: 1 }],
  });
  const provider = await connect(fake);
  return {
    provider,
    offeringId: L4,
    capacity: 3,
    // The fake boots in 150 ms and stops in 60 (operations 15 ms, polls every 40): a VM terminated while pending
    // has had 3 times its boot to come back after 600 ms of real waiting. Waits for a state keep 1.5 s.
    settleMs: 600,
    async waitFor(predicate, maxMs) {
      await waitFor(predicate, Math.max(maxMs, 1_500));
    },
    elapse: (ms) => clock.sleep(ms),
    exceedQuota: () => provider.provision({ offeringId: L4_SPOT, count: 2, idempotencyKey: 'quota' }),
    async dispose() {
      await provider.close();
      await fake.close();
    },
  };
});

describe('GCP adapter on the fake Compute Engine', () => {
  it('creates GPU VMs with one all-or-nothing bulkInsert: machine type, spot scheduling, labels, requestId', async () => {
    const fake = await startFake();
    const provider = await connect(fake);
    const launched = await provider.provision({
      offeringId: L4_SPOT,
      count: 2,
      idempotencyKey: 'spot-pair',
      tags: { 'Team/Name': 'ML Research', role: 'serve' },
    });
    const [call] = fake.calls('instances.bulkInsert');
    expect(call?.query.requestId).toBe(
      requestIdFor(fake.project, 'bulkInsert', OWNER, 'spot-pair', 'us-central1-a'),
    );
    expect(call?.query.requestId).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    const vms = fake.instances();
    expect(vms).toHaveLength(2);
    for (const vm of vms) {
      expect(vm.machineType).toBe('g2-standard-4');
      expect(vm.scheduling).toMatchObject({
        provisioningModel: 'SPOT',
        instanceTerminationAction: 'DELETE',
        onHostMaintenance: 'TERMINATE',
        automaticRestart: false,
      });
      expect(vm.labels).toEqual({
        gpubroker_broker: OWNER,
        gpubroker_offering: 'gcp_us-central1_g2-standard-4_spot',
        gpubroker_key: 'spot-pair',
        team_name: 'ml_research',
        role: 'serve',
      });
    }
    // The exact tags come back, not the sanitised labels.
    const listed = await provider.list({ tags: { 'Team/Name': 'ML Research' } });
    expect(listed.map((i) => i.id).sort()).toEqual(launched.map((i) => i.id).sort());
    expect(listed[0]?.tags).toEqual({
      'Team/Name': 'ML Research',
      role: 'serve',
      'gpubroker:broker': OWNER,
      'gpubroker:offering': L4_SPOT,
      'gpubroker:key': 'spot-pair',
    });
    expect(listed[0]).toMatchObject({
      capacityType: 'spot',
      gpu: 'L4',
      zone: 'us-central1-a',
      region: 'us-central1',
    });
    // Same labels, other exact tags: filtered out on this side.
    expect(await provider.list({ tags: { 'Team/Name': 'ml research' } })).toEqual([]);
    await provider.close();
    await fake.close();
  });

  it('attaches guestAccelerators to N1 hosts', async () => {
    const fake = await startFake();
    const provider = await connect(fake);
    await provider.provision({ offeringId: T4, count: 1, idempotencyKey: 't4' });
    expect(fake.instances()[0]).toMatchObject({
      machineType: 'n1-standard-4',
      guestAccelerators: [{ acceleratorType: 'nvidia-tesla-t4', acceleratorCount: 1 }],
      scheduling: { onHostMaintenance: 'TERMINATE' },
    });
    await provider.close();
    await fake.close();
  });

  it('provisions once per idempotency key: repeated, after a restart, and when the first answer was lost', async () => {
    const fake = await startFake();
    const first = await connect(fake);
    const request = { offeringId: L4, count: 2, idempotencyKey: 'once', tags: { app: 'a' } };
    const ids = (await first.provision(request)).map((i) => i.id);
    expect((await first.provision(request)).map((i) => i.id)).toEqual(ids);
    const restarted = await connect(fake);
    expect((await restarted.provision(request)).map((i) => i.id).sort()).toEqual([...ids].sort());
    await expect(restarted.provision({ ...request, count: 1 })).rejects.toBeInstanceOf(InvalidRequestError);
    expect(fake.calls('instances.bulkInsert')).toHaveLength(1);
    expect(fake.instances()).toHaveLength(2);

    // The create is accepted but its outcome never reaches the adapter: the retry finds what it made.
    fake.inject('zoneOperations.wait', { http: 503, reason: 'backendError', message: 'Backend Error' });
    const lost = { offeringId: L4, count: 3, idempotencyKey: 'lost' };
    await expect(first.provision(lost)).rejects.toBeInstanceOf(ProviderUnavailableError);
    const again = await first.provision(lost);
    expect(again).toHaveLength(3);
    const inserts = fake.calls('instances.bulkInsert').slice(1);
    expect(new Set(inserts.map((c) => c.query.requestId)).size).toBe(1);
    expect(fake.instances()).toHaveLength(5);
    await first.close();
    await restarted.close();
    await fake.close();
  });

  describe('agent bootstrap (request.agent)', () => {
    const agent: AgentBootstrap = {
      brokerUrl: 'https://broker.example.com',
      joinToken: 'gbj_gcp_0123456789abcdef',
      version: '1.2.3',
    };
    /** The `startup-script` items of each bulkInsert body, in order. */
    const sentScripts = (fake: FakeCompute) =>
      fake.calls('instances.bulkInsert').map((call) => {
        const body = call.body as {
          instanceProperties?: { metadata?: { items?: { key: string; value: string }[] } };
        };
        return body.instanceProperties?.metadata?.items?.find((i) => i.key === 'startup-script')?.value;
      });

    it('passes the start-up script as the startup-script metadata item; the token is not on the agent command line', async () => {
      const fake = await startFake();
      const provider = await connect(fake);
      await provider.provision({ offeringId: L4, count: 2, idempotencyKey: 'agent-1', agent });
      const [script] = sentScripts(fake);
      expect(script).toBe(agentStartupScript('gcp', agent));
      const execStart = script?.split('\n').find((l) => l.startsWith('ExecStart=')) ?? '';
      expect(execStart).toContain('gpubroker agent --broker https://broker.example.com ');
      expect(execStart).toContain('--instance-id-from gcp');
      expect(execStart).not.toContain(agent.joinToken);
      // Every VM of the call carries it, beside the launch record.
      const vms = fake.instances();
      expect(vms).toHaveLength(2);
      for (const vm of vms) {
        expect(vm.metadata.find((i) => i.key === 'startup-script')?.value).toBe(script);
        expect(vm.metadata.map((i) => i.key).sort()).toEqual(['gpubroker', 'startup-script']);
      }
      await provider.close();
      await fake.close();
    });

    it('passes no startup-script without it', async () => {
      const fake = await startFake();
      const provider = await connect(fake);
      await provider.provision({ offeringId: L4, count: 1, idempotencyKey: 'no-agent' });
      expect(sentScripts(fake)).toEqual([undefined]);
      expect(fake.instances()[0]?.metadata.map((i) => i.key)).toEqual(['gpubroker']);
      await provider.close();
      await fake.close();
    });

    it('a launch repeated after its answer was lost sends the same script under the same requestId', async () => {
      // The operation outlasts the lost answer, so the repeat finds no VM yet and sends bulkInsert again.
      const fake = await startFake({ operationDelayMs: 2_000 });
      const provider = await connect(fake);
      fake.inject('zoneOperations.wait', { http: 503, reason: 'backendError', message: 'Backend Error' });
      const request = { offeringId: L4, count: 1, idempotencyKey: 'agent-lost', agent };
      await expect(provider.provision(request)).rejects.toBeInstanceOf(ProviderUnavailableError);
      const again = await connect(fake);
      await again.provision({ ...request, agent: { ...agent } });
      const inserts = fake.calls('instances.bulkInsert');
      expect(inserts).toHaveLength(2);
      expect(new Set(inserts.map((c) => c.query.requestId)).size).toBe(1);
      expect(new Set(sentScripts(fake))).toEqual(new Set([agentStartupScript('gcp', agent)]));
      expect(fake.instances()).toHaveLength(1);
      await provider.close();
      await again.close();
      await fake.close();
    });

    it('refuses a bootstrap it cannot pass safely, before calling GCE', async () => {
      const fake = await startFake();
      const provider = await connect(fake);
      const bad = provider.provision({
        offeringId: L4,
        count: 1,
        idempotencyKey: 'bad-agent',
        agent: { ...agent, joinToken: 'token\nExecStartPre=/bin/sh' },
      });
      await expect(bad).rejects.toBeInstanceOf(InvalidRequestError);
      await expect(bad).rejects.toMatchObject({ field: 'agent.joinToken' });
      expect(fake.calls('instances.bulkInsert')).toHaveLength(0);
      await provider.close();
      await fake.close();
    });
  });

  it('never deletes a VM it does not own, even when asked by id', async () => {
    const fake = await startFake();
    const mine = await connect(fake, { pollIntervalMs: 60_000 });
    const theirs = await connect(fake, { owner: 'other-fleet' });
    const [vm] = await theirs.provision({ offeringId: L4, count: 1, idempotencyKey: 'theirs' });
    await mine.terminate([vm?.id ?? '', 'us-central1-a/no-such-vm']);
    expect(fake.calls('instances.get')).toHaveLength(2);
    expect(fake.calls('instances.delete')).toEqual([]);
    expect(await mine.list()).toEqual([]);
    await theirs.terminate([vm?.id ?? '']);
    expect(fake.calls('instances.delete')).toHaveLength(1);
    await mine.close();
    await theirs.close();
    await fake.close();
  });

  it('publishes the regional GPU quotas less what other VMs of the project use, read once per 10 minutes', async () => {
    const fake = await startFake({
      quotas: [
        { metric: 'NVIDIA_L4_GPUS', region: 'us-central1', limit: 8 },
        { metric: 'PREEMPTIBLE_NVIDIA_L4_GPUS', region: 'us-central1', limit: 4 },
      ],
    });
    const mine = await connect(fake);
    const theirs = await connect(fake, { owner: 'other-fleet' });
    await theirs.provision({ offeringId: L4, count: 3, idempotencyKey: 'theirs' });
    await mine.provision({ offeringId: L4, count: 2, idempotencyKey: 'mine' });
    const quotas = await mine.quotas();
    // 8 less the 3 GPUs of the other fleet; our own 2 count inside the broker's plans, not here.
    expect(quotas).toContainEqual({
      region: 'us-central1',
      gpu: 'L4',
      capacityType: 'on-demand',
      maxGpus: 5,
    });
    expect(quotas).toContainEqual({ region: 'us-central1', gpu: 'L4', capacityType: 'spot', maxGpus: 4 });
    // T4 has no quota row in this project: nothing is published for it.
    expect(quotas.some((q) => q.gpu === 'T4')).toBe(false);
    expect(fake.calls('regions.get')).toHaveLength(1);
    await mine.quotas();
    expect(fake.calls('regions.get')).toHaveLength(1);
    await mine.close();
    await theirs.close();
    await fake.close();
  });

  it('tries the next zone when one is out of stock, and sets the stocked-out zone aside', async () => {
    const fake = await startFake();
    const provider = await connect(fake);
    fake.inject('instances.bulkInsert', {
      operationError: {
        code: 'ZONE_RESOURCE_POOL_EXHAUSTED',
        message:
          "The zone 'projects/gpubroker-test/zones/us-central1-a' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.",
        httpStatus: 503,
      },
    });
    const [vm] = await provider.provision({ offeringId: L4, count: 1, idempotencyKey: 'fallback' });
    expect(vm?.zone).toBe('us-central1-b');
    const quote = (await provider.offerings()).find((o) => o.id === L4);
    expect(quote?.availableZones).toEqual(['us-central1-b']);
    await provider.close();
    await fake.close();
  });

  describe('maps GCE errors to the typed errors', () => {
    const cases: {
      name: string;
      fake?: FakeComputeOptions;
      setup?: (fake: FakeCompute) => void;
      call: (provider: GcpProvider) => Promise<unknown>;
      expected: (error: unknown) => void;
    }[] = [
      {
        name: 'ZONE_RESOURCE_POOL_EXHAUSTED in the operation → InsufficientCapacityError',
        setup: (fake) =>
          fake.inject(
            'instances.bulkInsert',
            { operationError: { code: 'ZONE_RESOURCE_POOL_EXHAUSTED' } },
            2,
          ),
        call: (p) => p.provision({ offeringId: L4, count: 1, idempotencyKey: 'k' }),
        expected: (e) => {
          expect(e).toBeInstanceOf(InsufficientCapacityError);
          expect(e).toMatchObject({ offeringId: L4, retryAfterMs: 600_000 });
        },
      },
      {
        name: 'ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS in the operation → InsufficientCapacityError',
        fake: { capacity: [{ machineType: 'g2-standard-4', max: 1 }] },
        call: (p) => p.provision({ offeringId: L4, count: 2, idempotencyKey: 'k', zone: 'us-central1-b' }),
        expected: (e) => {
          expect(e).toBeInstanceOf(InsufficientCapacityError);
          expect((e as Error).message).toMatch(/us-central1-b: ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS/);
        },
      },
      {
        name: 'HTTP 503 insufficientCapacity → InsufficientCapacityError',
        fake: { capacity: [{ machineType: 'g2-standard-4', max: 0 }], failureDelivery: 'http' },
        call: (p) => p.provision({ offeringId: L4, count: 1, idempotencyKey: 'k' }),
        expected: (e) => expect(e).toBeInstanceOf(InsufficientCapacityError),
      },
      {
        name: 'QUOTA_EXCEEDED in the operation → QuotaExceededError',
        fake: { quotas: [{ metric: 'NVIDIA_T4_GPUS', region: 'us-central1', limit: 1 }] },
        call: (p) => p.provision({ offeringId: T4, count: 2, idempotencyKey: 'k' }),
        expected: (e) => {
          expect(e).toBeInstanceOf(QuotaExceededError);
          expect(e).toMatchObject({ quota: 'NVIDIA_T4_GPUS-per-project-region', limit: 1, requested: 2 });
        },
      },
      {
        name: 'HTTP 403 quotaExceeded → QuotaExceededError (limit read from the message)',
        fake: {
          quotas: [{ metric: 'NVIDIA_L4_GPUS', region: 'us-central1', limit: 2 }],
          failureDelivery: 'http',
        },
        call: (p) => p.provision({ offeringId: L4, count: 3, idempotencyKey: 'k' }),
        expected: (e) => {
          expect(e).toBeInstanceOf(QuotaExceededError);
          expect(e).toMatchObject({ quota: 'NVIDIA_L4_GPUS', limit: 2, requested: 3 });
        },
      },
      {
        name: 'HTTP 429 rateLimitExceeded on every try → ThrottledError',
        setup: (fake) =>
          fake.inject(
            'instances.aggregatedList',
            { http: 429, reason: 'rateLimitExceeded', message: 'Rate Limit Exceeded' },
            99,
          ),
        call: (p) => p.list(),
        expected: (e) => {
          expect(e).toBeInstanceOf(ThrottledError);
          expect((e as ThrottledError).retryAfterMs).toBeGreaterThan(0);
          expect((e as ThrottledError).retried).toBe(true);
        },
      },
      {
        name: 'HTTP 401 → ProviderUnavailableError naming the credentials',
        setup: (fake) =>
          fake.inject('instances.aggregatedList', {
            http: 401,
            reason: 'authError',
            message: 'Invalid Credentials',
          }),
        call: (p) => p.list(),
        expected: (e) => {
          expect(e).toBeInstanceOf(ProviderUnavailableError);
          expect((e as Error).message).toMatch(/refused the credentials .*HTTP 401.*Invalid Credentials/);
        },
      },
      {
        name: 'HTTP 403 forbidden → ProviderUnavailableError naming the missing permission',
        setup: (fake) =>
          fake.inject('instances.bulkInsert', {
            http: 403,
            reason: 'forbidden',
            message:
              "Required 'compute.instances.create' permission for 'projects/gpubroker-test/zones/us-central1-a/instances/x'",
          }),
        call: (p) => p.provision({ offeringId: L4, count: 1, idempotencyKey: 'k' }),
        expected: (e) => {
          expect(e).toBeInstanceOf(ProviderUnavailableError);
          expect((e as Error).message).toMatch(/HTTP 403.*compute\.instances\.create/);
        },
      },
      {
        name: 'HTTP 500 backendError → ProviderUnavailableError',
        setup: (fake) =>
          fake.inject('instances.aggregatedList', {
            http: 500,
            reason: 'backendError',
            message: 'Internal Error',
          }),
        call: (p) => p.list(),
        expected: (e) => expect(e).toBeInstanceOf(ProviderUnavailableError),
      },
      {
        name: 'HTTP 400 invalid on create → InvalidRequestError',
        setup: (fake) =>
          fake.inject('instances.bulkInsert', {
            http: 400,
            reason: 'invalid',
            message:
              "Invalid value for field 'resource.instanceProperties.disks[0].initializeParams.sourceImage'",
          }),
        call: (p) => p.provision({ offeringId: L4, count: 1, idempotencyKey: 'k' }),
        expected: (e) => expect(e).toBeInstanceOf(InvalidRequestError),
      },
    ];
    for (const c of cases)
      it(c.name, async () => {
        const fake = await startFake(c.fake);
        // No poll: the injected fault must meet the call under test.
        const provider = await connect(fake, { pollIntervalMs: 60_000 });
        c.setup?.(fake);
        const error = await c.call(provider).catch((e: unknown) => e);
        c.expected(error);
        if (!(error instanceof ThrottledError) && !(error instanceof ProviderUnavailableError))
          expect(fake.instances()).toEqual([]);
        await provider.close();
        await fake.close();
      });

    it('a closed endpoint → ProviderUnavailableError', async () => {
      const fake = await startFake();
      const provider = await connect(fake);
      await fake.close();
      await expect(provider.list()).rejects.toBeInstanceOf(ProviderUnavailableError);
      await provider.close();
    });
  });

  it('retries throttled calls with exponential backoff on the clock', async () => {
    const fake = await startFake();
    // No poll runs in between: every call the fake sees is the test's.
    const quiet = await connect(fake, { pollIntervalMs: 60_000 });
    fake.inject(
      'instances.aggregatedList',
      { http: 403, reason: 'rateLimitExceeded', message: 'Rate Limit Exceeded' },
      2,
    );
    const start = fake.requests.length;
    expect(await quiet.list()).toEqual([]);
    const tries = fake.requests.slice(start).filter((r) => r.method === 'instances.aggregatedList');
    expect(tries).toHaveLength(3);
    const gaps = tries.slice(1).map((t, i) => t.atMs - (tries[i]?.atMs ?? 0));
    // Equal jitter: retry n waits between half and all of base × 2^n (20 ms, then 40 ms).
    expect(gaps[0]).toBeGreaterThanOrEqual(10);
    expect(gaps[1]).toBeGreaterThanOrEqual(20);

    fake.inject('instances.aggregatedList', { http: 429, reason: 'rateLimitExceeded' }, 99);
    const from = fake.requests.length;
    await expect(quiet.list()).rejects.toBeInstanceOf(ThrottledError);
    expect(fake.requests.slice(from).filter((r) => r.method === 'instances.aggregatedList')).toHaveLength(4);
    await quiet.close();
    await fake.close();
  });

  it('follows every page of the inventory', async () => {
    const fake = await startFake({ pageSize: 5 });
    const provider = await connect(fake, { pollIntervalMs: 60_000 });
    await provider.provision({ offeringId: L4, count: 7, idempotencyKey: 'a', tags: { batch: 'x' } });
    await provider.provision({ offeringId: L4, count: 5, idempotencyKey: 'b', tags: { batch: 'x' } });
    const from = fake.requests.length;
    const listed = await provider.list({ tags: { batch: 'x' } });
    expect(listed).toHaveLength(12);
    expect(new Set(listed.map((i) => i.id)).size).toBe(12);
    const pages = fake.requests.slice(from).filter((r) => r.method === 'instances.aggregatedList');
    expect(pages).toHaveLength(3);
    expect(pages.map((p) => p.query.pageToken !== undefined)).toEqual([false, true, true]);
    expect(pages[0]?.query.filter).toBe('(labels.batch = "x") (labels.gpubroker_broker = "fleet-test")');
    await provider.close();
    await fake.close();
  });

  it('finds orphans by tags after a crash, and reports them on the new adapter', async () => {
    const fake = await startFake();
    const crashed = await connect(fake);
    const launched = await crashed.provision({
      offeringId: L4,
      count: 2,
      idempotencyKey: 'before-crash',
      tags: { lease: 'l-1' },
    });
    await waitFor(() => fake.instances().every((i) => i.status === 'RUNNING'));
    await crashed.close(); // the process died: nothing of its memory survives

    const restarted = await connect(fake);
    const { events, stop } = record(restarted);
    const orphans = await restarted.list({ tags: { 'gpubroker:broker': OWNER } });
    expect(orphans.map((i) => i.id).sort()).toEqual(launched.map((i) => i.id).sort());
    for (const orphan of orphans)
      expect(orphan).toMatchObject({
        offeringId: L4,
        idempotencyKey: 'before-crash',
        state: 'running',
        tags: { lease: 'l-1', 'gpubroker:key': 'before-crash' },
      });
    await waitFor(() => events.length >= 2);
    expect(events.map((e) => e.kind === 'state-changed' && [e.from, e.to])).toEqual([
      [null, 'running'],
      [null, 'running'],
    ]);
    await restarted.terminate(orphans.map((i) => i.id));
    await waitFor(() => fake.instances().length === 0);
    stop();
    await restarted.close();
    await fake.close();
  });

  it('sees spot preemption through the compute.instances.preempted operation', async () => {
    const fake = await startFake();
    const provider = await connect(fake);
    const { events, stop } = record(provider);
    const [vm] = await provider.provision({ offeringId: L4_SPOT, count: 1, idempotencyKey: 'spot' });
    const id = vm?.id ?? '';
    await waitFor(async () => (await provider.list()).some((i) => i.id === id && i.state === 'running'));
    const preemptedAt = clock.now();
    fake.preempt('us-central1-a', vm?.id.split('/')[1] ?? '');
    await waitFor(async () =>
      (await provider.list({ includeTerminated: true })).some((i) => i.id === id && i.state === 'terminated'),
    );
    const gone = (await provider.list({ includeTerminated: true })).find((i) => i.id === id);
    expect(gone?.terminationReason).toBe('preempted');
    const notice = events.find((e) => e.kind === 'interruption-notice');
    expect(notice).toMatchObject({ instanceId: id, offeringId: L4_SPOT, zone: 'us-central1-a' });
    if (notice?.kind === 'interruption-notice') {
      expect(notice.terminateAtMs).toBeGreaterThanOrEqual(preemptedAt + 30_000 - 5);
      expect(notice.terminateAtMs).toBeLessThanOrEqual(clock.now() + 30_000);
    }
    const states = events.filter((e) => e.kind === 'state-changed' && e.instanceId === id);
    expect(states.map((e) => e.kind === 'state-changed' && [e.to, e.reason])).toEqual([
      ['pending', undefined],
      ['running', undefined],
      ['terminating', undefined],
      ['terminated', 'preempted'],
    ]);
    stop();
    await provider.close();
    await fake.close();
  });

  it('reports a VM stopped by a host error as failed, and deletes it', async () => {
    const fake = await startFake();
    const provider = await connect(fake);
    const { events, stop } = record(provider);
    const [vm] = await provider.provision({ offeringId: L4, count: 1, idempotencyKey: 'host' });
    await waitFor(() => fake.instances()[0]?.status === 'RUNNING');
    fake.failHost('us-central1-a', vm?.id.split('/')[1] ?? '');
    await waitFor(() => events.some((e) => e.kind === 'failure'));
    const ended = events.find((e) => e.kind === 'state-changed' && e.to === 'terminated');
    expect(ended).toMatchObject({ instanceId: vm?.id, reason: 'failed' });
    await waitFor(() => fake.instances().length === 0);
    expect(fake.calls('instances.delete')).toHaveLength(1);
    stop();
    await provider.close();
    await fake.close();
  });

  it('stops polling on close', async () => {
    const fake = await startFake();
    const provider = await connect(fake, { pollIntervalMs: 20 });
    await waitFor(() => fake.calls('instances.aggregatedList').length >= 2);
    await provider.close();
    const after = fake.calls('instances.aggregatedList').length;
    await clock.sleep(150);
    expect(fake.calls('instances.aggregatedList').length).toBe(after);
    await expect(provider.list()).rejects.toBeInstanceOf(ProviderUnavailableError);
    await fake.close();
  });

  it('fails at start with one clear error when credentials are missing or refused, or the config is wrong', async () => {
    const fake = await startFake();
    const missing = await createGcpProvider({
      clock,
      project: fake.project,
      keyFilename: '/nonexistent/gpubroker-gcp-key.json',
      endpoint: fake.endpoint,
    }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ProviderUnavailableError);
    expect((missing as Error).message).toMatch(/^gcp: no usable GCP credentials \(.*gpubroker-gcp-key\.json/);

    const refused = await connect(fake, { authClient: tokenClient('stolen-token') }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ProviderUnavailableError);
    expect((refused as Error).message).toMatch(
      /refused the credentials for project gpubroker-test \(HTTP 401\)/,
    );

    await expect(connect(fake, { regions: ['mars-north1'] })).rejects.toBeInstanceOf(ValidationError);
    await expect(connect(fake, { project: 'Not A Project' })).rejects.toThrow(/gcp\.project/);
    await fake.close();
  });

  describe('prices from the Cloud Billing Catalog API', () => {
    const catalog = loadCatalog();
    const catalogPrice = (id: string) => catalog.find((o) => o.id === id)?.microsPerHour;

    async function priced(options: Partial<GcpProviderOptions> = {}) {
      const fake = await startFake({ skus: SKUS });
      const logs: { fields: Record<string, unknown>; message: string }[] = [];
      const provider = await connect(fake, {
        billingEndpoint: fake.endpoint,
        log: { debug: (fields, message) => logs.push({ fields, message }) },
        ...options,
      });
      const recorder = record(provider);
      const price = async (id: string) =>
        (await provider.offerings()).find((q) => q.id === id)?.microsPerHour;
      const dispose = async () => {
        recorder.stop();
        await provider.close();
        await fake.close();
      };
      return { fake, provider, logs, events: recorder.events, price, dispose };
    }

    it('prices offerings from the SKUs of their cores, memory and GPUs, following every page', async () => {
      const { fake, provider, logs, dispose } = await priced();
      try {
        const byId = new Map((await provider.offerings()).map((q) => [q.id, q.microsPerHour]));
        expect(byId.get(L4)).toBe(SKU_PRICES[L4]);
        expect(byId.get(L4_SPOT)).toBe(SKU_PRICES[L4_SPOT]);
        expect(byId.get(T4)).toBe(SKU_PRICES[T4]);
        // No spot SKUs for N1 or T4, no A2 SKUs at all: the catalog's prices, and the debug log says which.
        const T4_SPOT = 'gcp/us-central1/n1-standard-4+1xT4/spot';
        const A100 = 'gcp/us-central1/a2-highgpu-1g/on-demand';
        expect(byId.get(T4_SPOT)).toBe(catalogPrice(T4_SPOT));
        expect(byId.get(A100)).toBe(catalogPrice(A100));
        expect(logs).toContainEqual({
          fields: { vendor: 'gcp', offerings: expect.arrayContaining([T4_SPOT, A100]) },
          message: expect.stringMatching(/no price for these offerings/),
        });
        // 12 SKUs, 5 a page: three pages, each asked for with the token of the one before, in USD.
        const pages = fake.calls('services.skus.list');
        expect(pages.map((r) => r.query.pageToken ?? '')).toEqual(['', '5', '10']);
        expect(pages.every((r) => r.authorized && r.query.currencyCode === 'USD')).toBe(true);
        expect(pages[0]?.path).toBe('/v1/services/6F81-5844-456A/skus');
        const [vm] = await provider.provision({ offeringId: L4, count: 1, idempotencyKey: 'priced' });
        expect(vm?.microsPerHour).toBe(SKU_PRICES[L4]);
      } finally {
        await dispose();
      }
    });

    it('keeps the catalog prices when the billing catalog fails, without failing offerings, and reads again later', async () => {
      const { fake, logs, price, dispose } = await priced({ priceRefreshMs: 200 });
      try {
        fake.inject('services.skus.list', { http: 503, reason: 'backendError', message: 'try later' }, 1);
        expect(await price(L4)).toBe(catalogPrice(L4));
        expect(logs).toContainEqual({
          fields: { vendor: 'gcp', err: expect.anything() },
          message: 'reading list prices failed; offerings keep the catalog prices',
        });
        await waitFor(async () => (await price(L4)) === SKU_PRICES[L4]);
      } finally {
        await dispose();
      }
    });

    it('publishes a price change after the SKUs are read again', async () => {
      const { fake, events, price, dispose } = await priced({ priceRefreshMs: 300 });
      try {
        expect(await price(L4)).toBe(SKU_PRICES[L4]);
        fake.putSku(hourly('Nvidia L4 GPU running in Americas', 'GPU', 'OnDemand', '0.5'));
        await waitFor(async () => (await price(L4)) === SKU_PRICES[L4] - 60_040);
        const changes = () => events.filter((e) => e.kind === 'price-changed' && e.offeringId === L4);
        await waitFor(() => changes().length > 0);
        expect(changes()).toEqual([expect.objectContaining({ vendor: 'gcp', microsPerHour: 646_784 })]);
      } finally {
        await dispose();
      }
    });

    it('reads no prices when Compute Engine has another endpoint and the billing catalog has none', async () => {
      const fake = await startFake({ skus: SKUS });
      const logs: string[] = [];
      const provider = await connect(fake, { log: { debug: (_fields, message) => logs.push(message) } });
      try {
        await provider.offerings();
        expect(fake.calls('services.skus.list')).toHaveLength(0);
        expect(logs).toContain('live list prices are off; offerings keep the catalog prices');
      } finally {
        await provider.close();
        await fake.close();
      }
    });
  });

  it('reads its settings from the environment', () => {
    expect(
      gcpOptionsFromEnv({
        GPUBROKER_GCP_PROJECT: 'my-project',
        GPUBROKER_GCP_REGIONS: 'us-central1, europe-west4',
        GPUBROKER_GCP_OWNER: 'fleet-prod',
      }),
    ).toEqual({ project: 'my-project', regions: ['us-central1', 'europe-west4'], owner: 'fleet-prod' });
    expect(gcpOptionsFromEnv({})).toEqual({});
    expect(gcpOptionsFromEnv({ GPUBROKER_GCP_BILLING_ENDPOINT: 'http://127.0.0.1:8123' })).toEqual({
      billingEndpoint: { host: '127.0.0.1', port: 8123, protocol: 'http' },
    });
    expect(() => gcpOptionsFromEnv({ GPUBROKER_GCP_BILLING_ENDPOINT: 'billing' })).toThrow(
      /GPUBROKER_GCP_BILLING_ENDPOINT/,
    );
  });

  it('sanitises tags into valid label keys and values', () => {
    expect(labelKey('gpubroker:broker')).toBe('gpubroker_broker');
    expect(labelKey('9lives')).toBe('t_9lives');
    expect(labelValue('gcp/us-central1/a3-highgpu-8g/spot')).toBe('gcp_us-central1_a3-highgpu-8g_spot');
    expect(labelValue('x'.repeat(100))).toHaveLength(63);
  });

  it('never opened a connection beyond 127.0.0.1, and always sent the fake token', () => {
    expect(destinations.length).toBeGreaterThan(0);
    expect(new Set(destinations)).toEqual(new Set(['127.0.0.1']));
  });
});
