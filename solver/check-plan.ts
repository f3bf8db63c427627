import { microsToUsd } from '../lib/money.ts';
import { type Offering, reservedTwin } from '../providers/catalog/offering.ts';
import { bufferFor, bufferGpus } from './policy.ts';
import { isAllowed } from './reduce.ts';
import { type Plan, type PlanInput, quotaCovers, quotaLabel } from './types.ts';

const EPS = 1e-6;

/**
 * Checks a plan against the rules as the formulation states them, reading only the plan's instance counts and
 * reported unmet demand, never the solver's rows or slacks. Returns one message per violated rule (empty: valid).
 * Used by tests and by the broker as an assertion before acting.
 */
export function checkPlan(input: PlanInput, plan: Plan): string[] {
  const { policy } = input;
  const errors: string[] = [];
  const byId = new Map<string, Offering>(input.offerings.map((o) => [o.id, o]));
  const reservedCount = new Map<string, number>();
  for (const r of input.reservations ?? []) {
    const base = byId.get(r.offeringId);
    if (!base) continue;
    const twin = reservedTwin(base);
    byId.set(twin.id, twin);
    reservedCount.set(twin.id, r.count);
  }
  const periods = plan.periods;
  const held = new Map(plan.targets.map((t) => [t.offeringId, t.counts]));
  const current = new Map((input.fleet ?? []).map((f) => [f.offeringId, f.count]));
  const ids = new Set([...held.keys(), ...current.keys()]);
  const count = (id: string, t: number) => (t < 0 ? (current.get(id) ?? 0) : (held.get(id)?.[t] ?? 0));
  const pools = [...held.keys()].map((id) => ({ id, o: byId.get(id) }));
  for (const p of pools) if (!p.o) errors.push(`unknown offering ${p.id}`);
  const known = pools.flatMap((p) => (p.o ? [{ id: p.id, o: p.o }] : []));
  const gpus = (t: number, pred: (o: Offering) => boolean) =>
    known.reduce((acc, p) => (pred(p.o) ? acc + p.o.gpusPerInstance * count(p.id, t) : acc), 0);

  for (const [id, counts] of held) {
    if (counts.length !== periods) errors.push(`${id}: ${counts.length} counts for ${periods} periods`);
    if (counts.some((c) => !Number.isSafeInteger(c) || c < 0))
      errors.push(`${id}: counts must be non-negative integers`);
  }
  const unmetOf = (gpu: string, group: string, gang: number, t: number) =>
    plan.unmet.find((u) => u.gpu === gpu && u.regionGroup === group && u.gangSize === gang)?.gpus[t] ?? 0;

  for (let t = 0; t < periods; t++) {
    const tag = `period ${t + 1}`;
    // coverage and gang rows
    const cells = new Set(input.demand.map((d) => `${d.gpu}\u0000${d.regionGroup}`));
    for (const cell of cells) {
      const [gpu = '', group = ''] = cell.split('\u0000');
      const classes = input.demand.filter((d) => d.gpu === gpu && d.regionGroup === group);
      for (const d of classes) {
        const u = unmetOf(gpu, group, d.gangSize, t);
        if (u < -EPS || u > (d.gpus[t] ?? 0) + EPS)
          errors.push(`${tag}: unmet ${u} outside [0, ${d.gpus[t]}] for ${gpu}/${group}/${d.gangSize}`);
      }
      for (const s of new Set([1, ...classes.map((d) => d.gangSize)])) {
        const need = classes
          .filter((d) => d.gangSize >= s)
          .reduce((acc, d) => acc + (d.gpus[t] ?? 0) - unmetOf(gpu, group, d.gangSize, t), 0);
        const capacity = known.reduce(
          (acc, p) =>
            p.o.gpu === gpu && p.o.regionGroup === group
              ? acc + s * Math.floor(p.o.gpusPerInstance / s) * count(p.id, t)
              : acc,
          0,
        );
        if (capacity + EPS < need)
          errors.push(`${tag}: ${gpu}/${group} gangs of ${s}: ${capacity} GPUs for ${need} covered`);
      }
      const demandGpus = classes.reduce((acc, d) => acc + (d.gpus[t] ?? 0), 0);
      const buffer = bufferGpus(bufferFor(policy, gpu), demandGpus);
      if (t === 0) {
        const capacity = gpus(t, (o) => o.gpu === gpu && o.regionGroup === group);
        const unmet = classes.reduce((acc, d) => acc + unmetOf(gpu, group, d.gangSize, t), 0);
        if (capacity + unmet + plan.bufferShortfallGpus + EPS < demandGpus + buffer)
          errors.push(`${tag}: ${gpu}/${group} buffer not held nor reported`);
      }
    }
    for (const q of input.quotas ?? []) {
      const used = gpus(t, (o) => quotaCovers(q, o));
      if (used > q.maxGpus + EPS) errors.push(`${tag}: quota ${quotaLabel(q)} ${used} > ${q.maxGpus}`);
    }
    for (const gpu of new Set(known.map((p) => p.o.gpu))) {
      const total = gpus(t, (o) => o.gpu === gpu);
      const within = (part: number, share: number, what: string) => {
        if (share < 1 && part > share * total + EPS)
          errors.push(`${tag}: ${what} ${part} of ${total} ${gpu} GPUs > ${share}`);
      };
      for (const group of new Set(known.filter((k) => k.o.gpu === gpu).map((k) => k.o.regionGroup))) {
        const cell = gpus(t, (o) => o.gpu === gpu && o.regionGroup === group);
        const spot = gpus(t, (o) => o.gpu === gpu && o.regionGroup === group && o.capacityType === 'spot');
        if (policy.spotMaxShare < 1 && spot > policy.spotMaxShare * cell + EPS)
          errors.push(`${tag}: spot ${spot} of ${cell} ${gpu}/${group} GPUs > ${policy.spotMaxShare}`);
      }
      for (const p of known.filter((k) => k.o.gpu === gpu)) {
        within(
          gpus(t, (o) => o.gpu === gpu && o.vendor === p.o.vendor && o.region === p.o.region),
          policy.maxRegionShare,
          `region ${p.o.region}`,
        );
        within(
          gpus(t, (o) => o.gpu === gpu && o.vendor === p.o.vendor),
          policy.maxVendorShare,
          `vendor ${p.o.vendor}`,
        );
      }
    }
    if (policy.budgetUsdPerHour !== null) {
      const spend = known.reduce(
        (acc, p) =>
          p.o.capacityType === 'reserved' ? acc : acc + microsToUsd(p.o.microsPerHour) * count(p.id, t),
        0,
      );
      if (spend > policy.budgetUsdPerHour + 1e-6)
        errors.push(`${tag}: spend ${spend}/h over the budget ${policy.budgetUsdPerHour}`);
    }
    if (policy.maxTerminateFraction < 1) {
      const churnable = [...ids].filter((id) => {
        const o = byId.get(id);
        return o !== undefined && isAllowed(o, policy);
      });
      const stopped = churnable.reduce((acc, id) => acc + Math.max(0, count(id, t - 1) - count(id, t)), 0);
      const fleet = churnable.reduce((acc, id) => acc + count(id, t - 1), 0);
      if (stopped > policy.maxTerminateFraction * fleet + EPS)
        errors.push(`${tag}: ${stopped} of ${fleet} instances stopped`);
    }
    for (const f of input.fleet ?? []) {
      const young = (f.instanceAgesMs ?? []).filter(
        (age) => age + t * policy.periodMinutes * 60_000 < policy.minLifetimeMinutes * 60_000,
      ).length;
      if (count(f.offeringId, t) < young)
        errors.push(`${tag}: ${f.offeringId} stops instances younger than the minimum lifetime`);
    }
    for (const p of known) {
      const grew = count(p.id, t) > (current.get(p.id) ?? 0);
      if (grew && !isAllowed(p.o, policy)) errors.push(`${tag}: ${p.id} is denied by policy`);
      if (grew && (input.unavailable ?? []).includes(p.id)) errors.push(`${tag}: ${p.id} is unavailable`);
      if (p.o.capacityType === 'reserved' && count(p.id, t) > (reservedCount.get(p.id) ?? 0))
        errors.push(`${tag}: ${p.id} above its reservation`);
    }
  }
  return errors;
}
