import { describe, expect, it } from 'vitest';
import { offering } from '../test/offerings.ts';
import { checkPlan } from './check-plan.ts';
import { planCapacity } from './plan.ts';
import { type PlanningPolicyInput, planningPolicy } from './policy.ts';
import type { DemandClass, PlanInput } from './types.ts';

const exact = (extra: PlanningPolicyInput = {}) =>
  planningPolicy({ ...extra, solver: { backend: 'highs', relativeGap: 0, ...extra.solver } });
const demand = (gpu: string, gpus: number, gangSize = 1, regionGroup = 'us'): DemandClass => ({
  gpu,
  regionGroup,
  gangSize,
  gpus: [gpus],
});

async function solve(input: PlanInput) {
  const plan = await planCapacity(input);
  expect(checkPlan(input, plan)).toEqual([]);
  return plan;
}
const held = (plan: Awaited<ReturnType<typeof solve>>, id: string) =>
  plan.pools.find((p) => p.offeringId === id)?.count ?? 0;

describe('capacity plan: hand-built cases with known optima', () => {
  it('covers 8-GPU gangs only with 8-GPU instances, however cheap the 1-GPU ones are', async () => {
    const one = offering('aws', 'us-east-1', 'H100', 1, 1);
    const eight = offering('aws', 'us-east-1', 'H100', 8, 40);
    const input = { offerings: [one, eight], demand: [demand('H100', 16, 8)], policy: exact() };
    const plan = await solve(input);
    expect(held(plan, eight.id)).toBe(2);
    expect(held(plan, one.id)).toBe(0);
    expect(plan.status).toBe('optimal');
    expect(plan.cost.usdPerHour).toBe(80);
  });

  it('moves capacity to the next-cheapest region when a quota binds, and says so', async () => {
    const cheap = offering('aws', 'us-east-1', 'A100', 1, 2);
    const next = offering('aws', 'us-west-2', 'A100', 1, 3);
    const input = {
      offerings: [cheap, next],
      demand: [demand('A100', 10)],
      policy: exact({ provisioningMinutes: 0 }),
      quotas: [{ vendor: 'aws', region: 'us-east-1', maxGpus: 6 }],
    };
    const plan = await solve(input);
    expect(held(plan, cheap.id)).toBe(6);
    expect(held(plan, next.id)).toBe(4);
    const quota = plan.explanation.find((e) => e.kind === 'quota');
    expect(quota?.bindingAtPlan).toBe(true);
    expect(quota?.marginalUsdPerHour).toBeCloseTo(1, 6); // one more GPU of quota saves $3 − $2 per hour
  });

  it('holds no more spot than the spot cap allows', async () => {
    const spot = offering('gcp', 'us-central1', 'L4', 1, 0.3, 'spot');
    const od = offering('gcp', 'us-central1', 'L4', 1, 1);
    const input = {
      offerings: [spot, od],
      demand: [demand('L4', 10)],
      policy: exact({ spotMaxShare: 0.4, spotInterruptionsPerHour: { default: 0 } }),
    };
    const plan = await solve(input);
    expect(held(plan, spot.id)).toBe(4);
    expect(held(plan, od.id)).toBe(6);
    expect(plan.explanation.some((e) => e.kind === 'spot' && e.bindingAtPlan)).toBe(true);
  });

  it('reports unmet demand when the budget binds', async () => {
    const o = offering('azure', 'eastus', 'H100', 1, 10);
    const input = { offerings: [o], demand: [demand('H100', 10)], policy: exact({ budgetUsdPerHour: 55 }) };
    const plan = await solve(input);
    expect(held(plan, o.id)).toBe(5);
    expect(plan.unmetGpus).toBe(5);
    expect(plan.cost.usdPerHour).toBe(50);
    expect(plan.explanation.find((e) => e.kind === 'budget')?.bindingAtPlan).toBe(false); // $5/h is left, less than one instance
  });

  it('holds the warm buffer on top of demand, as GPUs or as a share', async () => {
    const o = offering('aws', 'us-east-1', 'L4', 1, 1);
    expect(
      held(
        await solve({
          offerings: [o],
          demand: [demand('L4', 20)],
          policy: exact({ buffer: { default: { gpus: 3 } } }),
        }),
        o.id,
      ),
    ).toBe(23);
    expect(
      held(
        await solve({
          offerings: [o],
          demand: [demand('L4', 20)],
          policy: exact({ buffer: { perGpu: { L4: { fraction: 0.25 } } } }),
        }),
        o.id,
      ),
    ).toBe(25);
  });

  it('keeps what the fleet holds rather than paying start-up for a slightly cheaper pool', async () => {
    const held1 = offering('aws', 'us-east-1', 'A10G', 1, 1.0);
    const cheaper = offering('aws', 'us-east-2', 'A10G', 1, 0.99);
    const input = {
      offerings: [held1, cheaper],
      demand: [demand('A10G', 4)],
      policy: exact({ provisioningMinutes: 5 }),
      fleet: [{ offeringId: held1.id, count: 4 }],
    };
    const plan = await solve(input);
    expect(held(plan, held1.id)).toBe(4);
    expect(plan.actions).toEqual([]);
  });

  it('stops no more than the scale-down budget and never an instance younger than the minimum lifetime', async () => {
    const o = offering('aws', 'us-east-1', 'T4', 1, 1);
    const fleet = [
      { offeringId: o.id, count: 10, instanceAgesMs: [0, 0, 0, ...Array(7).fill(6 * 3_600_000)] },
    ];
    const plan = await solve({
      offerings: [o],
      demand: [{ gpu: 'T4', regionGroup: 'us', gangSize: 1, gpus: [0, 0, 0] }],
      policy: exact({ maxTerminateFraction: 0.5, minLifetimeMinutes: 90 }),
      fleet,
    });
    // t1: half of 10 may stop; t2: the 3 young ones (60 min old) stay, half of 5 may stop; t3: half of 3 may stop.
    expect(plan.targets[0]?.counts).toEqual([5, 3, 2]);
  });

  it('never buys denied vendors or unavailable offerings', async () => {
    const denied = offering('gcp', 'us-central1', 'H100', 8, 20);
    const out = offering('aws', 'us-east-1', 'H100', 8, 25);
    const fine = offering('azure', 'eastus', 'H100', 8, 30);
    const input = {
      offerings: [denied, out, fine],
      demand: [demand('H100', 8)],
      policy: exact({ vendors: { deny: ['gcp'] } }),
      unavailable: [out.id],
    };
    const plan = await solve(input);
    expect(plan.pools.map((p) => p.offeringId)).toEqual([fine.id]);
  });

  it('charges nothing for reserved capacity up to its count', async () => {
    const od = offering('aws', 'us-east-1', 'H100', 8, 50);
    const input = {
      offerings: [od],
      demand: [demand('H100', 24)],
      policy: exact(),
      reservations: [{ offeringId: od.id, count: 2 }],
    };
    const plan = await solve(input);
    expect(held(plan, 'aws/us-east-1/h100-8x/reserved')).toBe(2);
    expect(held(plan, od.id)).toBe(1);
    expect(plan.cost.usdPerHour).toBe(50);
  });

  it('spreads a GPU type over regions when the policy asks', async () => {
    const a = offering('aws', 'us-east-1', 'L40S', 1, 1);
    const b = offering('aws', 'us-west-2', 'L40S', 1, 2);
    const plan = await solve({
      offerings: [a, b],
      demand: [demand('L40S', 10)],
      policy: exact({ maxRegionShare: 0.6 }),
    });
    expect(held(plan, a.id)).toBe(6);
    expect(held(plan, b.id)).toBe(4);
  });

  it('falls back to the greedy plan when asked and reports the gap to the bound', async () => {
    const input = {
      offerings: [offering('aws', 'us-east-1', 'A100', 8, 30), offering('aws', 'us-east-1', 'A100', 1, 4.5)],
      demand: [demand('A100', 9)],
      policy: planningPolicy({ solver: { backend: 'greedy' } }),
    };
    const plan = await solve(input);
    expect(plan.backend).toBe('greedy');
    expect(plan.bound).toBeLessThanOrEqual(plan.objective);
  });

  it('rejects demand that is not whole gangs', async () => {
    await expect(
      planCapacity({
        offerings: [offering('aws', 'r', 'H100', 8, 1)],
        demand: [demand('H100', 12, 8)],
        policy: exact(),
      }),
    ).rejects.toThrow(/whole number of 8-GPU gangs/);
  });
});
