import type { PlanningModel } from './model.ts';

/**
 * Completes integer instance counts x[o][t] into a full column vector: add/stop are the positive and negative
 * changes; unmet and buffer shortfall are the least that the coverage and gang rows require (shortfall first:
 * its penalty is lower). This is the cheapest completion, so its objective is the plan's objective.
 */
export function completeSolution(pm: PlanningModel, counts: readonly (readonly number[])[]): Float64Array {
  const { input, lp } = pm;
  const values = new Float64Array(lp.colCost.length);
  input.offerings.forEach((_, i) => {
    let previous = input.current[i] ?? 0;
    for (let t = 0; t < input.periods; t++) {
      const n = counts[i]?.[t] ?? 0;
      values[pm.x[i]?.[t] as number] = n;
      values[pm.add[i]?.[t] as number] = Math.max(0, n - previous);
      const stop = pm.stop[i]?.[t] ?? -1;
      if (stop >= 0) values[stop] = Math.max(0, previous - n);
      previous = n;
    }
  });

  for (const cell of cellsOf(pm)) {
    for (let t = 0; t < input.periods; t++) {
      const { unmet, short } = completeCell(pm, cell, t, (i) => counts[i]?.[t] ?? 0);
      for (const [di, gpus] of unmet) values[pm.unmet[di]?.[t] as number] = gpus;
      values[cell.short.cols[t] as number] = short;
    }
  }
  return values;
}

/** A (GPU type, region group) of the model: its offerings, demand classes, gang sizes and shortfall columns. */
export interface Cell {
  members: number[];
  classes: number[];
  /** Gang sizes asked for, largest first. */
  sizes: number[];
  short: PlanningModel['bufferShort'][number];
}

export function cellsOf(pm: PlanningModel): Cell[] {
  const { input } = pm;
  const members = new Map<string, number[]>();
  input.offerings.forEach((o, i) => {
    const key = `${o.gpu}\u0000${o.regionGroup}`;
    const list = members.get(key);
    if (list) list.push(i);
    else members.set(key, [i]);
  });
  return pm.bufferShort.map((short) => {
    const classes = input.demand.flatMap((d, di) =>
      d.gpu === short.gpu && d.regionGroup === short.regionGroup ? [di] : [],
    );
    const sizes = [...new Set(classes.map((di) => input.demand[di]?.gangSize as number))].sort(
      (a, b) => b - a,
    );
    return { members: members.get(`${short.gpu}\u0000${short.regionGroup}`) ?? [], classes, sizes, short };
  });
}

/**
 * The least unmet GPUs (per demand class) and buffer shortfall that one cell's coverage and gang rows require in
 * period t at the given instance counts: gang thresholds from the largest down, then the coverage row, whose
 * deficit goes to the shortfall first (its penalty is lower), then to any class with room.
 */
export function completeCell(
  pm: PlanningModel,
  cell: Cell,
  t: number,
  count: (i: number) => number,
): { unmet: Map<number, number>; short: number } {
  const { input } = pm;
  const gpus = (di: number) => input.demand[di]?.gpus[t] ?? 0;
  const unmet = new Map<number, number>();
  for (const s of cell.sizes) {
    let capacity = 0;
    for (const i of cell.members)
      capacity += s * Math.floor((input.offerings[i]?.gpusPerInstance as number) / s) * count(i);
    let need = 0;
    let already = 0;
    for (const di of cell.classes) {
      if ((input.demand[di]?.gangSize as number) < s) continue;
      need += gpus(di);
      already += unmet.get(di) ?? 0;
    }
    let deficit = need - capacity - already;
    for (const di of cell.classes) {
      if (input.demand[di]?.gangSize !== s) continue;
      const room = gpus(di) - (unmet.get(di) ?? 0);
      const take = Math.max(0, Math.min(room, deficit));
      unmet.set(di, (unmet.get(di) ?? 0) + take);
      deficit -= take;
    }
  }
  let capacity = 0;
  for (const i of cell.members) capacity += (input.offerings[i]?.gpusPerInstance as number) * count(i);
  let need = cell.short.gpus[t] ?? 0;
  for (const di of cell.classes) need += gpus(di);
  let unmetTotal = 0;
  for (const u of unmet.values()) unmetTotal += u;
  let deficit = need - capacity - unmetTotal;
  const short = Math.max(0, Math.min(cell.short.gpus[t] ?? 0, deficit));
  deficit -= short;
  for (const di of cell.classes) {
    if (deficit <= 0) break;
    const take = Math.min(gpus(di) - (unmet.get(di) ?? 0), deficit);
    unmet.set(di, (unmet.get(di) ?? 0) + take);
    deficit -= take;
  }
  return { unmet, short };
}

/** Rounded instance counts x[o][t] from a column vector. */
export function readCounts(pm: PlanningModel, values: ArrayLike<number>): number[][] {
  return pm.x.map((cols) => cols.map((j) => Math.max(0, Math.round(values[j] as number))));
}
