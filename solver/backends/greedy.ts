import { microsToUsd } from '../../lib/money.ts';
import type { ModelInput } from '../model.ts';
import { bufferFor, bufferGpus, interruptionsPerHour } from '../policy.ts';
import { quotaCovers } from '../types.ts';

/**
 * The baseline that per-request brokers implement: period by period, keep what is held, then cover each
 * (GPU type, region group) by adding one instance at a time of the offering with the lowest effective price per
 * usable GPU that still fits every rule (quotas, budget, spot share, spread); then stop the most expensive surplus
 * instances that the churn and lifetime rules allow. It never looks ahead and never trades one pool for another.
 * Used for comparison and as the fallback when a MIP solve fails or finds nothing in time.
 */
export function greedyCounts(input: ModelInput): number[][] {
  const { offerings, policy, periods, demand } = input;
  const P = policy.provisioningMinutes / 60;
  const W = policy.interruptionLostMinutes / 60;
  const effective = offerings.map((o) => {
    const price = o.capacityType === 'reserved' ? 0 : microsToUsd(o.microsPerHour);
    const lambda = o.capacityType === 'spot' ? interruptionsPerHour(policy, o.vendor) : 0;
    return price * (1 + lambda * (P + W));
  });
  const counts = offerings.map(() => new Array<number>(periods).fill(0));
  const gpusOf = (i: number) => offerings[i]?.gpusPerInstance as number;

  let previous = [...input.current];
  for (let t = 0; t < periods; t++) {
    const n = offerings.map((_, i) => Math.min(previous[i] ?? 0, upper(input, i, t)));
    for (let i = 0; i < n.length; i++) n[i] = Math.max(n[i] as number, input.protectedCounts[i]?.[t] ?? 0);

    const sum = (pred: (i: number) => boolean, weight: (i: number) => number) =>
      n.reduce((acc, c, i) => (pred(i) ? acc + c * weight(i) : acc), 0);
    // Churn budget, lifetime floor and share rules, shared by the repair and scale-down steps.
    const churnable = offerings.map((_, i) => !input.churnExempt[i]);
    let stopBudget =
      policy.maxTerminateFraction >= 1
        ? Number.POSITIVE_INFINITY
        : Math.floor(
            policy.maxTerminateFraction * previous.reduce((a, c, i) => (churnable[i] ? a + c : a), 0) + 1e-9,
          ) - previous.reduce((a, c, i) => (churnable[i] ? a + Math.max(0, c - (n[i] as number)) : a), 0);
    const m = Math.ceil(policy.minLifetimeMinutes / policy.periodMinutes);
    const keep = (i: number) => {
      let recent = 0;
      for (let tau = Math.max(0, t - m + 1); tau < t; tau++) {
        recent += Math.max(
          0,
          (counts[i]?.[tau] ?? 0) - (tau === 0 ? (input.current[i] ?? 0) : (counts[i]?.[tau - 1] ?? 0)),
        );
      }
      return (input.protectedCounts[i]?.[t] ?? 0) + recent;
    };
    const spotWithinCap = (gpu: string, group: string) => {
      const inCell = (j: number) => offerings[j]?.gpu === gpu && offerings[j]?.regionGroup === group;
      const spot = sum((j) => inCell(j) && offerings[j]?.capacityType === 'spot', gpusOf);
      return policy.spotMaxShare >= 1 || spot <= policy.spotMaxShare * sum(inCell, gpusOf) + 1e-9;
    };
    const sharesHold = (gpu: string, group: string) => {
      const total = sum((j) => offerings[j]?.gpu === gpu, gpusOf);
      const within = (pred: (j: number) => boolean, limit: number) =>
        limit >= 1 || sum((j) => offerings[j]?.gpu === gpu && pred(j), gpusOf) <= limit * total + 1e-9;
      return (
        spotWithinCap(gpu, group) &&
        offerings.every(
          (p) =>
            p.gpu !== gpu ||
            within(
              (j) => offerings[j]?.vendor === p.vendor && offerings[j]?.region === p.region,
              policy.maxRegionShare,
            ),
        ) &&
        offerings.every(
          (p) => p.gpu !== gpu || within((j) => offerings[j]?.vendor === p.vendor, policy.maxVendorShare),
        )
      );
    };
    const byPrice = offerings
      .map((_, i) => i)
      .sort((a, b) => (effective[b] as number) - (effective[a] as number) || a - b);
    const canStop = (i: number) => !churnable[i] || stopBudget >= 1 || (n[i] as number) > (previous[i] ?? 0);
    const stopOne = (i: number) => {
      if (churnable[i] && (n[i] as number) <= (previous[i] ?? 0)) stopBudget -= 1;
      n[i] = (n[i] as number) - 1;
    };
    // Repair: the fleet carried over may break a rule that changed (budget, quota, spot share, spread); stop the
    // most expensive instances that take part in a broken rule, as far as the churn and lifetime rules allow.
    const breaksRule = (i: number): boolean => {
      const o = offerings[i] as (typeof offerings)[number];
      if (policy.budgetUsdPerHour !== null && o.capacityType !== 'reserved') {
        const spend = sum(
          (j) => offerings[j]?.capacityType !== 'reserved',
          (j) => microsToUsd(offerings[j]?.microsPerHour as number),
        );
        if (spend > policy.budgetUsdPerHour + 1e-9) return true;
      }
      for (const q of input.quotas) {
        const inQuota = (j: number) => {
          const other = offerings[j];
          return other !== undefined && quotaCovers(q, other);
        };
        if (inQuota(i) && sum(inQuota, gpusOf) > q.maxGpus) return true;
      }
      const total = sum((j) => offerings[j]?.gpu === o.gpu, gpusOf);
      const over = (pred: (j: number) => boolean, limit: number) =>
        limit < 1 && sum((j) => offerings[j]?.gpu === o.gpu && pred(j), gpusOf) > limit * total + 1e-9;
      return (
        (o.capacityType === 'spot' && !spotWithinCap(o.gpu, o.regionGroup)) ||
        over(
          (j) => offerings[j]?.vendor === o.vendor && offerings[j]?.region === o.region,
          policy.maxRegionShare,
        ) ||
        over((j) => offerings[j]?.vendor === o.vendor, policy.maxVendorShare)
      );
    };
    const repair = () => {
      for (const i of byPrice) while ((n[i] as number) > keep(i) && canStop(i) && breaksRule(i)) stopOne(i);
    };
    repair();

    const needByGpu = new Map<string, number>();
    const needByCell = new Map<string, number>();
    const cells = new Map<string, { gpu: string; group: string; rows: { size: number; need: number }[] }>();
    for (const d of demand) {
      const key = `${d.gpu}\u0000${d.regionGroup}`;
      const cell = cells.get(key) ?? { gpu: d.gpu, group: d.regionGroup, rows: [] };
      cells.set(key, cell);
    }
    for (const cell of cells.values()) {
      const classes = demand.filter((d) => d.gpu === cell.gpu && d.regionGroup === cell.group);
      const total = classes.reduce((a, d) => a + (d.gpus[t] ?? 0), 0);
      const sizes = [...new Set(classes.map((d) => d.gangSize))].filter((s) => s > 1).sort((a, b) => b - a);
      for (const s of sizes) {
        cell.rows.push({
          size: s,
          need: classes.filter((d) => d.gangSize >= s).reduce((a, d) => a + (d.gpus[t] ?? 0), 0),
        });
      }
      const need = total + bufferGpus(bufferFor(policy, cell.gpu), total);
      cell.rows.push({ size: 1, need });
      needByGpu.set(cell.gpu, (needByGpu.get(cell.gpu) ?? 0) + need);
      needByCell.set(`${cell.gpu}\u0000${cell.group}`, need);
    }

    const fits = (i: number): boolean => {
      const o = offerings[i];
      if (!o || (n[i] as number) + 1 > upper(input, i, t)) return false;
      const g = o.gpusPerInstance;
      for (const q of input.quotas) {
        if (!quotaCovers(q, o)) continue;
        const used = sum((j) => {
          const other = offerings[j];
          return other !== undefined && quotaCovers(q, other);
        }, gpusOf);
        if (used + g > q.maxGpus) return false;
      }
      if (policy.budgetUsdPerHour !== null && o.capacityType !== 'reserved') {
        const spend = sum(
          (j) => offerings[j]?.capacityType !== 'reserved',
          (j) => microsToUsd(offerings[j]?.microsPerHour as number),
        );
        if (spend + microsToUsd(o.microsPerHour) > policy.budgetUsdPerHour + 1e-9) return false;
      }
      // Share rules are checked against the larger of the type's need and its capacity after the addition.
      const base = Math.max(needByGpu.get(o.gpu) ?? 0, sum((j) => offerings[j]?.gpu === o.gpu, gpusOf) + g);
      const share = (pred: (j: number) => boolean, limit: number) =>
        limit >= 1 || sum((j) => offerings[j]?.gpu === o.gpu && pred(j), gpusOf) + g <= limit * base + 1e-9;
      if (o.capacityType === 'spot' && policy.spotMaxShare < 1) {
        const inCell = (j: number) =>
          offerings[j]?.gpu === o.gpu && offerings[j]?.regionGroup === o.regionGroup;
        const cellBase = Math.max(
          needByCell.get(`${o.gpu}\u0000${o.regionGroup}`) ?? 0,
          sum(inCell, gpusOf) + g,
        );
        if (
          sum((j) => inCell(j) && offerings[j]?.capacityType === 'spot', gpusOf) + g >
          policy.spotMaxShare * cellBase + 1e-9
        )
          return false;
      }
      if (
        !share(
          (j) => offerings[j]?.vendor === o.vendor && offerings[j]?.region === o.region,
          policy.maxRegionShare,
        )
      )
        return false;
      if (!share((j) => offerings[j]?.vendor === o.vendor, policy.maxVendorShare)) return false;
      return true;
    };

    for (const cell of cells.values()) {
      const members = offerings.flatMap((o, i) =>
        o.gpu === cell.gpu && o.regionGroup === cell.group ? [i] : [],
      );
      for (const row of cell.rows) {
        const usable = (i: number) => row.size * Math.floor(gpusOf(i) / row.size);
        const candidates = members
          .filter((i) => usable(i) > 0)
          .sort(
            (a, b) => (effective[a] as number) / usable(a) - (effective[b] as number) / usable(b) || a - b,
          );
        const capacity = () => members.reduce((acc, i) => acc + usable(i) * (n[i] as number), 0);
        while (capacity() < row.need) {
          const pick = candidates.find(fits);
          if (pick === undefined) break;
          n[pick] = (n[pick] as number) + 1;
        }
      }
    }

    // What the fill could not balance (a type short of on-demand capacity holds too much spot) is undone here.
    repair();

    // Scale down: stop the most expensive instances that no row needs, within the churn budget.
    for (const i of byPrice) {
      const o = offerings[i];
      if (!o) continue;
      while (
        (n[i] as number) > keep(i) &&
        (!churnable[i] || stopBudget >= 1 || (n[i] as number) > (previous[i] ?? 0))
      ) {
        const cell = cells.get(`${o.gpu}\u0000${o.regionGroup}`);
        const members = offerings.flatMap((p, j) =>
          p.gpu === o.gpu && p.regionGroup === o.regionGroup ? [j] : [],
        );
        const stillCovered = (cell?.rows ?? []).every((row) => {
          const cap = members.reduce(
            (acc, j) => acc + row.size * Math.floor(gpusOf(j) / row.size) * (n[j] as number),
            0,
          );
          return cap - row.size * Math.floor(o.gpusPerInstance / row.size) >= row.need;
        });
        if (!stillCovered) break;
        n[i] = (n[i] as number) - 1;
        const holds = sharesHold(o.gpu, o.regionGroup);
        n[i] = (n[i] as number) + 1;
        if (!holds) break;
        stopOne(i);
      }
    }
    n.forEach((c, i) => {
      (counts[i] as number[])[t] = c;
    });
    previous = n;
  }
  return counts;
}

function upper(input: ModelInput, i: number, t: number): number {
  return Math.max(input.protectedCounts[i]?.[t] ?? 0, input.maxCount[i]?.[t] ?? Number.POSITIVE_INFINITY);
}
