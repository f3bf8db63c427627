/**
 * Quotas and launches, from the solver up to the control loop: capacity-type quotas in HiGHS, greedy and the plan
 * checker; the QuotaBook's choice of quotas that could bind and its learned limits; and the broker (in-memory
 * PGlite, simulated AWS on a virtual clock) planning within published quotas, learning a quota from a refusal,
 * launching in batches (a stock-out stops the rest of an action) and skipping shortfall re-plans that the booting
 * fleet already covers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import { loadCatalog } from '../providers/catalog/load-catalog.ts';
import type { Provider } from '../providers/provider.ts';
import { QuotaExceededError } from '../providers/provider-errors.ts';
import type { SimScenarioInput } from '../providers/sim/scenario.ts';
import { createSimClouds } from '../providers/sim/sim-clouds.ts';
import { settle } from '../simulations/engine/drive.ts';
import { checkPlan } from '../solver/check-plan.ts';
import { planCapacity } from '../solver/plan.ts';
import { type PlanningPolicyInput, planningPolicy } from '../solver/policy.ts';
import type { Plan, PlanInput, Quota } from '../solver/types.ts';
import { emptyDatabase } from '../test/empty-database.ts';
import { quietAwsScenario } from '../test/fast-aws.ts';
import { offering } from '../test/offerings.ts';
import { ACTION_TAG, LAUNCH_BATCH } from './act.ts';
import { BrokerCore } from './broker.ts';
import { actions, plans } from './db/schema.ts';
import { type BrokerPolicyInput, brokerPolicy } from './policy.ts';
import { LEARNED_QUOTA_MS, QuotaBook } from './quota-book.ts';

const START = Date.UTC(2026, 10, 23);
const BOOT_MS = 60_000;
const MINUTE = 60_000;

// ---------------------------------------------------------------------------------------------------------------
// Solver: quotas restricted to one capacity type.

describe('solver: a quota of one capacity type', () => {
  const spotEast = offering('aws', 'us-east-1', 'L4', 1, 0.3, 'spot');
  const spotWest = offering('aws', 'us-west-2', 'L4', 1, 0.4, 'spot');
  const odEast = offering('aws', 'us-east-1', 'L4', 1, 0.8);
  const odWest = offering('aws', 'us-west-2', 'L4', 1, 0.9);
  const policyFor = (backend: 'highs' | 'greedy', extra: PlanningPolicyInput = {}) =>
    planningPolicy({
      spotInterruptionsPerHour: { default: 0 },
      ...extra,
      solver: { backend, relativeGap: 0 },
    });
  const inputFor = (backend: 'highs' | 'greedy', quotas: Quota[]): PlanInput => ({
    offerings: [spotEast, spotWest, odEast, odWest],
    demand: [{ gpu: 'L4', regionGroup: 'us', gangSize: 1, gpus: [64] }],
    policy: policyFor(backend),
    quotas,
  });
  const held = (plan: Plan, id: string) => plan.pools.find((p) => p.offeringId === id)?.count ?? 0;
  const spotQuota: Quota = { vendor: 'aws', region: 'us-east-1', capacityType: 'spot', maxGpus: 16 };
  const onDemandQuota: Quota = { vendor: 'aws', region: 'us-east-1', capacityType: 'on-demand', maxGpus: 16 };

  for (const backend of ['highs', 'greedy'] as const) {
    it(`${backend}: keeps spot in the cheapest region within its spot quota, and covers the rest elsewhere`, async () => {
      const input = inputFor(backend, [spotQuota]);
      const plan = await planCapacity(input);
      expect(plan.backend).toBe(backend);
      expect(checkPlan(input, plan)).toEqual([]);
      expect(held(plan, spotEast.id)).toBe(16);
      // The next-cheapest GPUs are spot in us-west-2, not on-demand in us-east-1 (which the quota does not cover).
      expect(held(plan, spotWest.id)).toBe(48);
      expect(plan.unmetGpus).toBe(0);
    });

    it(`${backend}: an on-demand quota does not restrict spot in the same region`, async () => {
      const input = inputFor(backend, [onDemandQuota]);
      const plan = await planCapacity(input);
      expect(plan.backend).toBe(backend);
      expect(checkPlan(input, plan)).toEqual([]);
      expect(held(plan, spotEast.id)).toBe(64);
      expect(held(plan, odEast.id)).toBe(0);
    });
  }

  it('highs: an on-demand quota binds on-demand only, once spot is capped by the spot share', async () => {
    // Half may be spot: 32 spot GPUs in us-east-1 (uncapped by the on-demand quota), 16 on-demand there, 16 west.
    const input: PlanInput = {
      ...inputFor('highs', [onDemandQuota]),
      policy: policyFor('highs', { spotMaxShare: 0.5 }),
    };
    const plan = await planCapacity(input);
    expect(checkPlan(input, plan)).toEqual([]);
    expect(held(plan, spotEast.id)).toBe(32);
    expect(held(plan, odEast.id)).toBe(16);
    expect(held(plan, odWest.id)).toBe(16);
  });

  it('the plan checker counts a capacity-type quota against that capacity type only', async () => {
    const free = inputFor('highs', []);
    const plan = await planCapacity(free);
    expect(held(plan, spotEast.id)).toBe(64);
    expect(checkPlan({ ...free, quotas: [spotQuota] }, plan)).toEqual([
      'period 1: quota aws/us-east-1 spot 64 > 16',
    ]);
    expect(checkPlan({ ...free, quotas: [onDemandQuota] }, plan)).toEqual([]);
    // Without a capacity type the quota covers every GPU of the region.
    expect(
      checkPlan({ ...free, quotas: [{ vendor: 'aws', region: 'us-east-1', maxGpus: 16 }] }, plan),
    ).toEqual(['period 1: quota aws/us-east-1 64 > 16']);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// QuotaBook: which quotas go to the solver, and how long a learned one lasts.

describe('QuotaBook', () => {
  const policy = brokerPolicy({ buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { L4: { gpus: 2 } } } });
  const demand = [{ gpu: 'L4', regionGroup: 'us', gangSize: 1, gpus: [10, 6] }];
  const east = offering('aws', 'us-east-1', 'L4', 1, 0.8);

  it('passes on only the published quotas that the demand, buffer and fleet could reach', () => {
    const book = new QuotaBook(new VirtualClock(START));
    // Reach of L4: peak 10 + buffer 2 + rounding 8 = 20 GPUs.
    book.publish('aws', [
      { region: 'us-east-1', maxGpus: 1000 },
      { region: 'us-east-2', maxGpus: 19 },
      { region: 'us-west-2', gpu: 'L4', capacityType: 'spot', maxGpus: 20 },
    ]);
    expect(book.forPlan(demand, policy, []).map((q) => q.region)).toEqual(['us-east-2']);
    // 981 GPUs held in us-east-1 (981 + 20 > 1000) bring its quota within reach.
    const near = book.forPlan(demand, policy, [{ offering: east, count: 981 }]);
    expect(near.map((q) => q.region)).toEqual(['us-east-1', 'us-east-2']);
    // A new list replaces the vendor's old one.
    book.publish('aws', [{ region: 'us-west-2', capacityType: 'spot', maxGpus: 4 }]);
    expect(book.quotas()).toEqual([{ vendor: 'aws', region: 'us-west-2', capacityType: 'spot', maxGpus: 4 }]);
  });

  it('keeps a learned quota for its offering’s region, GPU and capacity type for an hour, whatever the demand', async () => {
    const clock = new VirtualClock(START);
    const book = new QuotaBook(clock);
    book.learn(east, new QuotaExceededError('aws', 'L4 GPUs', 12, 16, 'quota is 12'));
    const learned = {
      vendor: 'aws',
      region: 'us-east-1',
      gpu: 'L4',
      capacityType: 'on-demand',
      maxGpus: 12,
      learned: true,
    };
    expect(book.quotas()).toEqual([learned]);
    // Far above what the demand could reach, it is passed on all the same: it was reached once.
    book.learn(east, new QuotaExceededError('aws', 'L4 GPUs', 5000, 16, 'quota is 5000'));
    expect(book.forPlan(demand, policy, [])).toEqual([{ ...learned, maxGpus: 5000 }]);
    await clock.advanceBy(LEARNED_QUOTA_MS - 1);
    expect(book.quotas()).toHaveLength(1);
    await clock.advanceBy(1);
    expect(book.quotas()).toEqual([]);
    expect(book.forPlan(demand, policy, [])).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The broker against simulated AWS (L4 only; on-demand `g6.xlarge`, 1 GPU, is the only offering in stock unless a
// test says otherwise).

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

interface Setup {
  readonly quotas?: { region?: string; gpu?: string; capacityType?: 'on-demand' | 'spot'; maxGpus: number }[];
  readonly rules?: { match: { instanceType: string }; onDemandPerZone?: number; spotPerZone?: number }[];
  readonly zonesPerRegion?: number;
  readonly policy: BrokerPolicyInput;
  readonly wrap?: (p: Provider) => Provider;
}

async function brokerWith(setup: Setup) {
  const clock = new VirtualClock(START);
  const offerings = loadCatalog().filter((o) => o.gpu === 'L4' && o.vendor === 'aws');
  const clouds = createSimClouds({
    clock,
    offerings,
    scenario: {
      ...quietAwsScenario(11, BOOT_MS, {
        ...(setup.quotas ? { quotas: setup.quotas } : {}),
        ...(setup.zonesPerRegion ? { zonesPerRegion: setup.zonesPerRegion } : {}),
      }),
      stock: {
        onDemandPerZone: 0,
        spotPerZone: 0,
        rules: setup.rules ?? [{ match: { instanceType: 'g6.xlarge' }, onDemandPerZone: 64 }],
      },
    } as SimScenarioInput,
  });
  const cloud = clouds[0];
  if (!cloud) throw new Error('no simulated AWS');
  const database = await emptyDatabase();
  const broker = new BrokerCore({
    database,
    clock,
    providers: clouds.map(setup.wrap ?? ((p) => p)),
    seed: 13,
  });
  await broker.setPolicy(
    {
      spotMaxShare: 0,
      vendors: { allow: ['aws'], deny: [] },
      regions: { allow: ['us-east-1'], deny: [] },
      ...setup.policy,
    },
    'test',
  );
  await broker.start({ schedule: false });
  close = async () => {
    await broker.close();
    for (const c of clouds) await c.close();
    await database.close();
  };
  const advance = async (ms: number) => {
    await clock.advanceBy(ms);
    await settle();
    await broker.loop.idle();
    await settle();
  };
  const actionRows = async () =>
    (await database.db.select().from(actions)).filter((a) => a.kind === 'provision');
  const planCount = async () => (await database.db.select().from(plans)).length;
  /** GPUs held (not terminating) per region. */
  const gpusByRegion = () => {
    const byRegion = new Map<string, number>();
    for (const i of broker.fleet.all())
      if (i.state !== 'terminating')
        byRegion.set(i.region, (byRegion.get(i.region) ?? 0) + i.gpusPerInstance);
    return byRegion;
  };
  const tenant = async () => {
    const { token } = await broker.tokens.create('t', 'tenant');
    const principal = await broker.tokens.authenticate(token);
    if (!principal) throw new Error('no principal');
    return principal;
  };
  return { broker, clock, cloud, advance, actionRows, planCount, gpusByRegion, tenant };
}

const l4Buffer = (gpus: number): BrokerPolicyInput => ({
  buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { L4: { gpus, fraction: 0 } } },
});

/** The sim's clouds behind a client that cannot read quotas (as for the real clouds today). */
const withoutQuotas = (p: Provider): Provider => ({
  vendor: p.vendor,
  offerings: () => p.offerings(),
  provision: (r) => p.provision(r),
  terminate: (ids) => p.terminate(ids),
  list: (f) => p.list(f),
  events: (o) => p.events(o),
  close: () => p.close(),
});

describe('broker: published quotas', () => {
  it('plans within a published on-demand quota: launches only what it allows, none refused', async () => {
    const { broker, actionRows, gpusByRegion } = await brokerWith({
      quotas: [{ capacityType: 'on-demand', maxGpus: 16 }],
      policy: l4Buffer(40),
    });
    const tick = await broker.loop.tick();
    // One region, 16 GPUs allowed there: 16 launched, the rest of the buffer reported short, nothing refused.
    expect(tick.provisioned).toBe(16);
    expect(tick.rounds).toBe(1);
    expect(tick.bufferShortfallGpus).toBe(24);
    expect(gpusByRegion().get('us-east-1')).toBe(16);
    const rows = await actionRows();
    expect(rows.filter((a) => a.status === 'failed')).toEqual([]);
    expect(rows.reduce((n, a) => n + a.count, 0)).toBe(16);
  });

  it('a published spot quota does not hold back on-demand launches in the region', async () => {
    const { broker, actionRows, gpusByRegion } = await brokerWith({
      quotas: [{ region: 'us-east-1', gpu: 'L4', capacityType: 'spot', maxGpus: 8 }],
      policy: l4Buffer(40),
    });
    const tick = await broker.loop.tick();
    expect(tick.provisioned).toBe(40);
    expect(tick.bufferShortfallGpus).toBe(0);
    expect(gpusByRegion().get('us-east-1')).toBe(40);
    expect((await actionRows()).every((a) => a.status === 'done')).toBe(true);
  });
});

describe('broker: a quota learned from a refusal', () => {
  it('learns the limit, re-plans in the same tick, keeps to it for an hour, then tries again', async () => {
    const { broker, advance, actionRows, gpusByRegion, planCount } = await brokerWith({
      quotas: [{ capacityType: 'on-demand', maxGpus: 16 }],
      policy: l4Buffer(40),
      wrap: withoutQuotas,
    });
    const first = await broker.loop.tick();
    // Round 1 asks for 40: the first batch of 16 fits the quota, the second is refused and the third never sent.
    const rows = await actionRows();
    const [launched, refused, ...others] = rows;
    expect(others).toEqual([]);
    expect(launched?.status).toBe('done');
    expect(launched?.count).toBe(16);
    expect(refused?.id).toBe(`${launched?.id}-b1`);
    expect(refused?.status).toBe('failed');
    expect(refused?.error).toMatch(/^QuotaExceededError:/);
    // Round 2 plans with the learned quota: nothing more is asked for.
    expect(first.rounds).toBe(2);
    expect(first.provisioned).toBe(16);
    expect(first.stockedOut).toEqual([]);
    expect(gpusByRegion().get('us-east-1')).toBe(16);
    expect(await planCount()).toBe(1);

    // Half an hour later the limit still holds: no launch is tried, none refused.
    await advance(30 * MINUTE);
    const second = await broker.loop.tick();
    expect(second.rounds).toBe(1);
    expect(second.provisioned).toBe(0);
    expect(await actionRows()).toHaveLength(2);

    // After an hour it is forgotten: the loop asks again, is refused again and learns it again.
    await advance(31 * MINUTE);
    const third = await broker.loop.tick();
    expect(third.rounds).toBe(2);
    expect(third.provisioned).toBe(0);
    const failed = (await actionRows()).filter((a) => a.status === 'failed');
    expect(failed).toHaveLength(2);
    expect(failed.every((a) => a.error?.startsWith('QuotaExceededError:'))).toBe(true);
    expect(gpusByRegion().get('us-east-1')).toBe(16);
  });

  it('moves to another region in the same tick when one region refuses', async () => {
    const { broker, actionRows, gpusByRegion } = await brokerWith({
      quotas: [{ region: 'us-east-1', capacityType: 'on-demand', maxGpus: 0 }],
      policy: { ...l4Buffer(8), regions: { allow: ['us-east-1', 'us-east-2'], deny: [] } },
      wrap: withoutQuotas,
    });
    const tick = await broker.loop.tick();
    expect(tick.provisioned).toBe(8);
    expect(tick.bufferShortfallGpus).toBe(0);
    const held = gpusByRegion();
    expect(held.get('us-east-1') ?? 0).toBe(0);
    expect(held.get('us-east-2')).toBe(8);
    // The two regions cost the same and the first plan picks us-east-1: refused there, round 2 moves to us-east-2.
    const failed = (await actionRows()).filter((a) => a.status === 'failed');
    expect(failed.map((a) => a.offeringId)).toEqual(['aws/us-east-1/g6.xlarge/on-demand']);
    expect(failed[0]?.error).toMatch(/^QuotaExceededError:/);
    expect(tick.rounds).toBe(2);
  });
});

describe('broker: launches in batches', () => {
  it('launches 40 instances of one offering as 16, 16 and 8, each its own action and idempotency key', async () => {
    const { broker, cloud, actionRows } = await brokerWith({ policy: l4Buffer(40) });
    const tick = await broker.loop.tick();
    expect(tick.provisioned).toBe(40);
    const rows = await actionRows();
    expect(rows.map((r) => r.count)).toEqual([LAUNCH_BATCH, LAUNCH_BATCH, 40 - 2 * LAUNCH_BATCH]);
    expect(rows.map((r) => r.count)).toEqual([16, 16, 8]);
    const [key] = rows.map((r) => r.id);
    expect(key).toMatch(new RegExp(`^${tick.planId}-r1-\\d+$`));
    expect(rows.map((r) => r.id)).toEqual([key, `${key}-b1`, `${key}-b2`]);
    expect(rows.every((r) => r.status === 'done' && r.planId === tick.planId)).toBe(true);
    expect(new Set(rows.map((r) => r.offeringId)).size).toBe(1);
    // The provider saw three calls, one per key, each with its batch's instances.
    for (const row of rows) {
      const instances = await cloud.list({ tags: { [ACTION_TAG]: row.id } });
      expect(instances, row.id).toHaveLength(row.count);
      expect(instances.every((i) => i.idempotencyKey === row.id)).toBe(true);
      expect([...row.instanceIds].sort()).toEqual(instances.map((i) => i.id).sort());
    }
    expect(broker.fleet.all()).toHaveLength(40);
  });

  it('stops an action’s remaining batches at a stock-out and keeps what launched', async () => {
    // One zone with 20 × g6.xlarge: the first batch of 16 fits, the second does not.
    const { broker, cloud, actionRows } = await brokerWith({
      zonesPerRegion: 1,
      rules: [{ match: { instanceType: 'g6.xlarge' }, onDemandPerZone: 20 }],
      policy: l4Buffer(40),
    });
    const tick = await broker.loop.tick();
    const rows = await actionRows();
    expect(rows.map((r) => [r.count, r.status])).toEqual([
      [16, 'done'],
      [16, 'failed'],
    ]);
    const [launched, refused] = rows;
    expect(refused?.id).toBe(`${launched?.id}-b1`);
    expect(refused?.error).toMatch(/^InsufficientCapacityError:/);
    expect(tick.provisioned).toBe(16);
    expect(tick.stockedOut).toEqual([launched?.offeringId]);
    expect(tick.rounds).toBe(2);
    // The 16 launched stay in the fleet and at the provider.
    const held = broker.fleet.all().filter((i) => i.state !== 'terminating');
    expect(held).toHaveLength(16);
    expect(held.every((i) => i.offeringId === launched?.offeringId)).toBe(true);
    expect(await cloud.list()).toHaveLength(16);
  });
});

describe('broker: make before break', () => {
  /** 24 on-demand g6.xlarge held as a buffer; then spot is allowed, `spotStock` spot g6.xlarge to be had. */
  async function movingToSpot(spotStock: number) {
    const setup = await brokerWith({
      zonesPerRegion: 1,
      rules: [{ match: { instanceType: 'g6.xlarge' }, onDemandPerZone: 64, spotPerZone: spotStock }],
      policy: l4Buffer(24),
    });
    await setup.broker.loop.tick();
    await setup.advance(BOOT_MS);
    const onDemand = setup.broker.fleet.all().map((i) => i.id);
    expect(onDemand).toHaveLength(24);
    await setup.broker.setPolicy(
      {
        ...l4Buffer(24),
        spotMaxShare: 1,
        vendors: { allow: ['aws'], deny: [] },
        regions: { allow: ['us-east-1'], deny: [] },
      },
      'test',
    );
    return { ...setup, onDemand };
  }

  it('keeps the capacity it is moving away from when the move stocks out', async () => {
    // 4 spot instances in stock: the plan moves all 24 to spot, whose first batch of 16 is refused.
    const { broker, cloud, onDemand } = await movingToSpot(4);
    const tick = await broker.loop.tick();
    expect(tick.stockedOut.some((id) => id.endsWith('/spot'))).toBe(true);
    expect(tick.terminated).toBe(0);
    expect(tick.drained).toBe(0);
    for (const id of onDemand) expect(broker.fleet.get(id)?.state).toBe('running');
    expect((await cloud.list()).filter((i) => i.state !== 'terminating')).toHaveLength(24 + tick.provisioned);
  });

  it('when every round is refused, a last round that holds what it has still stops what is no longer needed', async () => {
    // 24 on-demand held for a 24-GPU buffer; the buffer drops to 8 and spot is allowed, where three instance
    // types have 4 in stock each: each round moves the 8 to the next cheapest spot type, and each is refused.
    const setup = await brokerWith({
      zonesPerRegion: 1,
      rules: [
        { match: { instanceType: 'g6.xlarge' }, onDemandPerZone: 64, spotPerZone: 4 },
        { match: { instanceType: 'g6.2xlarge' }, spotPerZone: 4 },
        { match: { instanceType: 'g6.4xlarge' }, spotPerZone: 4 },
      ],
      policy: l4Buffer(24),
    });
    const { broker } = setup;
    await broker.loop.tick();
    await setup.advance(BOOT_MS);
    expect(broker.fleet.all()).toHaveLength(24);
    await broker.setPolicy(
      {
        ...l4Buffer(8),
        spotMaxShare: 1,
        vendors: { allow: ['aws'], deny: [] },
        regions: { allow: ['us-east-1'], deny: [] },
      },
      'test',
    );
    const tick = await broker.loop.tick();
    expect(tick.stockedOut).toHaveLength(3);
    expect(tick.rounds).toBe(4);
    expect(tick.provisioned).toBe(0);
    expect(tick.terminated).toBe(16);
    await setup.advance(BOOT_MS);
    expect(broker.fleet.capacity()).toHaveLength(8);
  });

  it('stops the old capacity in the same tick once the new launches went through', async () => {
    const { broker, cloud, onDemand } = await movingToSpot(64);
    const tick = await broker.loop.tick();
    expect(tick.stockedOut).toEqual([]);
    expect(tick.provisioned).toBe(24);
    expect(tick.terminated).toBe(24);
    const stillRunning = (await cloud.list()).filter((i) => onDemand.includes(i.id) && i.state === 'running');
    expect(stillRunning).toEqual([]);
  });
});

describe('broker: shortfall triggers', () => {
  it('skips a trigger while booting instances cover the leases, and re-plans once some are drained', async () => {
    const { broker, advance, planCount, tenant } = await brokerWith({ policy: l4Buffer(0) });
    const principal = await tenant();
    await broker.leases.request(principal, { gpu: 'L4', count: 4, placement: 'any', capacityType: 'any' });
    const first = await broker.loop.tick();
    expect(first.provisioned).toBe(4);
    expect(broker.fleet.all().every((i) => i.state === 'pending')).toBe(true);
    expect(await planCount()).toBe(1);

    // The lease's own shortfall trigger fires past the debounce: the booting instances cover it.
    await advance(1_000);
    expect(broker.loop.triggersSkipped).toBe(1);
    expect(await planCount()).toBe(1);
    broker.loop.trigger();
    await advance(1_000);
    expect(broker.loop.triggersSkipped).toBe(2);
    expect(await planCount()).toBe(1);
    expect(broker.loop.last?.planId).toBe(first.planId);

    // Draining instances do not count: the same lease is no longer covered, so the trigger runs a tick.
    await broker.fleet.markDraining(
      broker.fleet
        .all()
        .slice(0, 2)
        .map((i) => i.id),
    );
    expect(broker.loop.coveredByFleet()).toBe(false);
    broker.loop.trigger();
    await advance(100);
    expect(await planCount()).toBe(1); // still within the debounce
    await advance(1_000);
    expect(await planCount()).toBe(2);
    expect(broker.loop.triggersSkipped).toBe(2);
    expect(broker.loop.last?.planId).not.toBe(first.planId);
    expect(broker.loop.last?.provisioned).toBe(2);
  });

  it('counts whole gangs: single-GPU instances do not cover a single-node lease', async () => {
    const { broker, advance, planCount, tenant } = await brokerWith({
      rules: [
        { match: { instanceType: 'g6.xlarge' }, onDemandPerZone: 64 },
        { match: { instanceType: 'g6.12xlarge' }, onDemandPerZone: 64 },
      ],
      policy: l4Buffer(4),
    });
    const first = await broker.loop.tick();
    expect(first.provisioned).toBe(4);
    expect(broker.fleet.all().map((i) => i.gpusPerInstance)).toEqual([1, 1, 1, 1]);

    // Two GPUs on any instances: covered by the 4 booting ones, so no tick.
    const principal = await tenant();
    await broker.leases.request(principal, { gpu: 'L4', count: 2, placement: 'any', capacityType: 'any' });
    await advance(1_000);
    expect(broker.loop.triggersSkipped).toBe(1);
    expect(await planCount()).toBe(1);

    // Two more on one node: 4 GPUs asked, 4 held, but no instance holds a gang of 2.
    await broker.leases.request(principal, {
      gpu: 'L4',
      count: 2,
      placement: 'single-node',
      capacityType: 'any',
    });
    expect(broker.loop.coveredByFleet()).toBe(false);
    await advance(1_000);
    expect(broker.loop.triggersSkipped).toBe(1);
    expect(await planCount()).toBe(2);
    expect(broker.loop.last?.provisioned).toBeGreaterThan(0);
    expect(broker.fleet.all().some((i) => i.gpusPerInstance >= 2)).toBe(true);
  });
});
