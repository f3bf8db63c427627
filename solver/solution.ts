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
    const unmet = new Float64Array(cell.classes.length);
    const held = new Float64Array(cell.members.length);
    for (let t = 0; t < input.periods; t++) {
      cell.members.forEach((i, m) => {
        held[m] = counts[i]?.[t] ?? 0;
      });
      const short = completeCell(pm, cell, t, held, unmet);
      cell.classes.forEach((di, c) => {
        values[pm.unmet[di]?.[t] as number] = unmet[c] as number;
      });
      values[cell.short.cols[t] as number] = short;
    }
  }
  return values;
}

/** A (GPU type, region group) of the model: its offerings, demand classes, gang sizes and shortfall columns. */
export interface Cell {
  members: number[];
  /** GPUs per instance of each member. */
  memberGpus: number[];
  classes: number[];
  /** Gang size of each class. */
  classGang: number[];
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
    const classGang = classes.map((di) => input.demand[di]?.gangSize as number);
    const sizes = [...new Set(classGang)].sort((a, b) => b - a);
    const cellMembers = members.get(`${short.gpu}\u0000${short.regionGroup}`) ?? [];
    return {
      members: cellMembers,
      memberGpus: cellMembers.map((i) => input.offerings[i]?.gpusPerInstance as number),
      classes,
      classGang,
      sizes,
      short,
    };
  });
}

/**
 * The least unmet GPUs (per demand class) and buffer shortfall that one cell's coverage and gang rows require in
 * period t at the given instance counts: gang thresholds from the largest down, then the coverage row, whose
 * deficit goes to the shortfall first (its penalty is lower), then to any class with room.
 * `held[m]`: instances of the cell's m-th member; writes the unmet GPUs of its c-th class to `unmet[c]` and returns
 * the shortfall (no allocation: the start-up DP calls it for every period and candidate).
 */
export function completeCell(
  pm: PlanningModel,
  cell: Cell,
  t: number,
  held: ArrayLike<number>,
  unmet: Float64Array,
): number {
  const { demand } = pm.input;
  const { classes, classGang, memberGpus } = cell;
  const nClasses = classes.length;
  const nMembers = memberGpus.length;
  const gpus = (c: number) => demand[classes[c] as number]?.gpus[t] ?? 0;
  unmet.fill(0);
  for (const s of cell.sizes) {
    let capacity = 0;
    for (let m = 0; m < nMembers; m++)
      capacity += s * Math.floor((memberGpus[m] as number) / s) * (held[m] as number);
    let need = 0;
    let already = 0;
    for (let c = 0; c < nClasses; c++) {
      if ((classGang[c] as number) < s) continue;
      need += gpus(c);
      already += unmet[c] as number;
    }
    let deficit = need - capacity - already;
    for (let c = 0; c < nClasses; c++) {
      if (classGang[c] !== s) continue;
      const room = gpus(c) - (unmet[c] as number);
      const take = Math.max(0, Math.min(room, deficit));
      unmet[c] = (unmet[c] as number) + take;
      deficit -= take;
    }
  }
  let capacity = 0;
  for (let m = 0; m < nMembers; m++) capacity += (memberGpus[m] as number) * (held[m] as number);
  let need = cell.short.gpus[t] ?? 0;
  let unmetTotal = 0;
  for (let c = 0; c < nClasses; c++) {
    need += gpus(c);
    unmetTotal += unmet[c] as number;
  }
  let deficit = need - capacity - unmetTotal;
  const short = Math.max(0, Math.min(cell.short.gpus[t] ?? 0, deficit));
  deficit -= short;
  for (let c = 0; c < nClasses; c++) {
    if (deficit <= 0) break;
    const take = Math.min(gpus(c) - (unmet[c] as number), deficit);
    unmet[c] = (unmet[c] as number) + take;
    deficit -= take;
  }
  return short;
}

/** Rounded instance counts x[o][t] from a column vector. */
export function readCounts(pm: PlanningModel, values: ArrayLike<number>): number[][] {
  return pm.x.map((cols) => cols.map((j) => Math.max(0, Math.round(values[j] as number))));
}
