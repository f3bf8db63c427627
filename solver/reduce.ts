import { groupBy } from '../lib/arrays.ts';
import { ValidationError } from '../lib/errors.ts';
import { type Offering, reservedTwin } from '../providers/catalog/offering.ts';
import type { ModelInput } from './model.ts';
import { bufferFor, bufferGpus, interruptionsPerHour, type PlanningPolicy } from './policy.ts';
import type { PlanInput } from './types.ts';

/**
 * Turns a PlanInput into the model's input, dropping offerings that cannot change the optimum:
 *  - GPU types nobody asks for and the fleet does not hold;
 *  - offerings in region groups without demand for their GPU type, unless a spread rule makes any capacity count;
 *  - dominated offerings: B is dominated by A when both have the same GPU type, GPUs per instance, capacity type
 *    and region group, every constraint treats them alike (same vendor where vendor-spread applies; same region
 *    where a quota or region-spread applies), and A costs no more on every objective term. Any plan that buys B
 *    can buy A instead at no higher cost. A dominated offering the fleet holds stays, capped at its current count.
 * The reduction is exact: the optimum of the reduced model is an optimum of the full one.
 */
export function reduceInput(input: PlanInput, periods: number): ModelInput {
  const { policy } = input;
  const fleet = new Map<string, { count: number; ages: number[] }>();
  for (const pool of input.fleet ?? []) {
    if (!Number.isSafeInteger(pool.count) || pool.count < 0)
      throw new ValidationError('fleet.count', `must be a non-negative integer for ${pool.offeringId}`);
    fleet.set(pool.offeringId, { count: pool.count, ages: pool.instanceAgesMs ?? [] });
  }
  const byId = new Map(input.offerings.map((o) => [o.id, o]));
  const all: Offering[] = [...input.offerings];
  const reservedCount = new Map<string, number>();
  for (const r of input.reservations ?? []) {
    const base = byId.get(r.offeringId);
    if (base?.capacityType !== 'on-demand') {
      throw new ValidationError('reservations.offeringId', `${r.offeringId} is not an on-demand offering`);
    }
    const twin = reservedTwin(base);
    all.push(twin);
    byId.set(twin.id, twin);
    reservedCount.set(twin.id, r.count);
  }
  for (const id of fleet.keys())
    if (!byId.has(id)) throw new ValidationError('fleet.offeringId', `unknown offering ${id}`);

  const demandedGpus = new Set(input.demand.map((d) => d.gpu));
  // Region groups with demand, per GPU type.
  const demandedCells = new Map<string, Set<string>>();
  for (const d of input.demand) {
    const groups = demandedCells.get(d.gpu) ?? new Set<string>();
    groups.add(d.regionGroup);
    demandedCells.set(d.gpu, groups);
  }
  const spreadActive = policy.maxRegionShare < 1 || policy.maxVendorShare < 1;
  const unavailable = new Set(input.unavailable ?? []);
  const quotaRegions = new Set((input.quotas ?? []).map((q) => `${q.vendor}/${q.region}`));

  const relevant = all.filter((o) => {
    if (fleet.has(o.id)) return true;
    if (!demandedGpus.has(o.gpu)) return false;
    if (!spreadActive && !demandedCells.get(o.gpu)?.has(o.regionGroup)) return false;
    return (
      isAllowed(o, policy) &&
      !unavailable.has(o.id) &&
      (o.capacityType !== 'reserved' || (reservedCount.get(o.id) ?? 0) > 0)
    );
  });

  const cannotDominate = (o: Offering) =>
    unavailable.has(o.id) || !isAllowed(o, policy) || o.capacityType === 'reserved';
  const dominated = findDominated(relevant, policy, quotaRegions, cannotDominate);
  if (policy.maxTerminateFraction >= 1)
    findDominatedBySmaller(relevant, input, policy, quotaRegions, cannotDominate, dominated);
  const kept = relevant.filter((o) => !dominated.has(o.id) || fleet.has(o.id));

  const periodMs = policy.periodMinutes * 60_000;
  const minLifetimeMs = policy.minLifetimeMinutes * 60_000;
  const current = kept.map((o) => fleet.get(o.id)?.count ?? 0);
  const protectedCounts = kept.map((o) => {
    const ages = fleet.get(o.id)?.ages ?? [];
    if (ages.length === 0) return new Array<number>(periods).fill(0);
    return Array.from(
      { length: periods },
      (_, t) => ages.filter((age) => age + t * periodMs < minLifetimeMs).length,
    );
  });
  const usefulMax = usefulInstanceBound(input, periods);
  // With a minimum lifetime, what an earlier period needed may still be held.
  const lifetimePeriods = Math.ceil(policy.minLifetimeMinutes / policy.periodMinutes);
  const bounds = kept.map((o) => {
    // Spread and churn rules can make extra capacity pay (diluting a share, earning the right to stop more):
    // no need-based bound is safe there; planCapacity bounds those by cost instead (see boundByCost).
    if (policy.maxTerminateFraction < 1 || policy.maxRegionShare < 1 || policy.maxVendorShare < 1) {
      return new Array<number>(periods).fill(Number.POSITIVE_INFINITY);
    }
    const perPeriod = new Array<number>(periods);
    const useful = usefulMax(o);
    for (let t = 0; t < periods; t++) perPeriod[t] = useful(t);
    // The most any period so far needed, with a minimum lifetime.
    if (lifetimePeriods >= 2)
      for (let t = 1; t < periods; t++)
        perPeriod[t] = Math.max(perPeriod[t - 1] as number, perPeriod[t] as number);
    return perPeriod;
  });
  const maxCount = kept.map((o, i) => {
    const counts = new Array<number>(periods);
    // Not allowed: drained as soon as the lifetime rule allows (lower bound wins).
    if (!isAllowed(o, policy)) return counts.fill(0);
    const held = current[i] ?? 0;
    for (let t = 0; t < periods; t++) {
      const cap = Math.max(held, bounds[i]?.[t] ?? 0);
      counts[t] =
        o.capacityType === 'reserved'
          ? Math.min(cap, reservedCount.get(o.id) ?? 0)
          : unavailable.has(o.id) || dominated.has(o.id)
            ? Math.min(cap, held)
            : cap;
    }
    return counts;
  });
  return {
    offerings: kept,
    demand: input.demand,
    policy,
    periods,
    current,
    protectedCounts,
    maxCount,
    churnExempt: kept.map((o) => !isAllowed(o, policy)),
    quotas: input.quotas ?? [],
  };
}

/**
 * The most instances of an offering any optimal plan holds: enough for that offering alone to cover every row of
 * its (GPU type, region group) in that period (the spot cap is per group, so over-buying on-demand never pays).
 * Finite bounds matter: without them HiGHS spends seconds in root cut separation on models of a few hundred
 * integers.
 */
function usefulInstanceBound(input: PlanInput, periods: number): (o: Offering) => (t: number) => number {
  const { policy } = input;
  const rowsByCell = new Map<string, { size: number; need: number[] }[]>();
  for (const cell of new Set(input.demand.map((d) => `${d.gpu}\u0000${d.regionGroup}`))) {
    const [gpu = '', group = ''] = cell.split('\u0000');
    const classes = input.demand.filter((d) => d.gpu === gpu && d.regionGroup === group);
    const rows: { size: number; need: number[] }[] = [];
    for (const size of new Set([1, ...classes.map((d) => d.gangSize)])) {
      const need = Array.from({ length: periods }, (_, t) => {
        const atLeast = classes
          .filter((d) => d.gangSize >= size)
          .reduce((acc, d) => acc + (d.gpus[t] ?? 0), 0);
        return size === 1 ? atLeast + bufferGpus(bufferFor(policy, gpu), atLeast) : atLeast;
      });
      rows.push({ size, need });
    }
    rowsByCell.set(cell, rows);
  }
  return (o) => {
    const rows = rowsByCell.get(`${o.gpu}\u0000${o.regionGroup}`) ?? [];
    return (t) => {
      let most = 0;
      for (const row of rows) {
        const usable = row.size * Math.floor(o.gpusPerInstance / row.size);
        if (usable > 0) most = Math.max(most, Math.ceil((row.need[t] ?? 0) / usable));
      }
      return most;
    };
  };
}

export function isAllowed(o: Offering, policy: PlanningPolicy): boolean {
  const { vendors, regions } = policy;
  if (vendors.deny.includes(o.vendor)) return false;
  if (vendors.allow && !vendors.allow.includes(o.vendor)) return false;
  const names = [o.region, `${o.vendor}/${o.region}`];
  if (names.some((n) => regions.deny.includes(n))) return false;
  if (regions.allow && !names.some((n) => regions.allow?.includes(n))) return false;
  return true;
}

/**
 * The constraint class of an offering: offerings in one class are interchangeable in every row. An offering has
 * eight possible keys (with its size or not, its vendor or any, its region or any); each is built once and kept
 * with the offering, since the loop reduces the same offerings at every tick.
 */
function classKey(
  o: Offering,
  policy: PlanningPolicy,
  quotaRegions: ReadonlySet<string>,
  withSize: boolean,
): string {
  const byRegion =
    policy.maxRegionShare < 1 || (quotaRegions.size > 0 && quotaRegions.has(`${o.vendor}/${o.region}`));
  const byVendor = policy.maxVendorShare < 1;
  const slot = (withSize ? 4 : 0) + (byRegion ? 2 : 0) + (byVendor ? 1 : 0);
  let keys = classKeys.get(o);
  if (!keys) {
    keys = new Array<string | undefined>(8);
    classKeys.set(o, keys);
  }
  let key = keys[slot];
  if (key === undefined) {
    key = [
      o.gpu,
      withSize ? o.gpusPerInstance : '',
      o.capacityType,
      o.regionGroup,
      byVendor ? o.vendor : '*',
      byRegion ? `${o.vendor}/${o.region}` : '*',
    ].join('\u0000');
    keys[slot] = key;
  }
  return key;
}

const classKeys = new WeakMap<Offering, (string | undefined)[]>();

/**
 * B (m·G GPUs) is dominated by m instances of A (G GPUs) when m·A costs no more on every objective term and every
 * gang size asked for in the cell divides G. Only without a churn limit: the churn row counts instances, not GPUs.
 * This removes the symmetry of GCP-style shapes priced per GPU (1g, 2g, 4g, 8g), which otherwise costs HiGHS
 * seconds of branching over equivalent mixes.
 */
function findDominatedBySmaller(
  offerings: readonly Offering[],
  input: PlanInput,
  policy: PlanningPolicy,
  quotaRegions: ReadonlySet<string>,
  cannotDominate: (o: Offering) => boolean,
  dominated: Set<string>,
): void {
  const classes = groupBy(
    offerings.filter((o) => o.capacityType !== 'reserved' && !dominated.has(o.id)),
    (o) => classKey(o, policy, quotaRegions, false),
  );
  const risk = (o: Offering) =>
    o.microsPerHour * (o.capacityType === 'spot' ? interruptionsPerHour(policy, o.vendor) : 0);
  for (const members of classes.values()) {
    const first = members[0];
    if (!first) continue;
    const gangs = input.demand
      .filter((d) => d.gpu === first.gpu && d.regionGroup === first.regionGroup)
      .map((d) => d.gangSize);
    for (const b of members) {
      const by = members.find(
        (a) =>
          a !== b &&
          !cannotDominate(a) &&
          a.gpusPerInstance < b.gpusPerInstance &&
          b.gpusPerInstance % a.gpusPerInstance === 0 &&
          gangs.every((s) => a.gpusPerInstance % s === 0) &&
          (b.gpusPerInstance / a.gpusPerInstance) * a.microsPerHour <= b.microsPerHour &&
          (b.gpusPerInstance / a.gpusPerInstance) * risk(a) <= risk(b),
      );
      if (by) dominated.add(b.id);
    }
  }
}

function findDominated(
  offerings: readonly Offering[],
  policy: PlanningPolicy,
  quotaRegions: ReadonlySet<string>,
  cannotDominate: (o: Offering) => boolean,
): Set<string> {
  const classes = groupBy(
    offerings.filter((o) => o.capacityType !== 'reserved'),
    (o) => classKey(o, policy, quotaRegions, true),
  );
  const dominated = new Set<string>();
  for (const members of classes.values()) {
    // Objective terms per offering: hourly price and the interruption term price × λ(vendor).
    const scored = members
      .map((o) => ({
        o,
        price: o.microsPerHour,
        risk: o.microsPerHour * (o.capacityType === 'spot' ? interruptionsPerHour(policy, o.vendor) : 0),
      }))
      .sort((a, b) => a.price - b.price || a.risk - b.risk || (a.o.id < b.o.id ? -1 : 1));
    let bestRisk = Number.POSITIVE_INFINITY;
    for (const s of scored) {
      if (s.risk >= bestRisk) dominated.add(s.o.id);
      else if (!cannotDominate(s.o)) bestRisk = s.risk;
    }
  }
  return dominated;
}
