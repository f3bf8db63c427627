import type { PlanningModel } from './model.ts';

/**
 * Completes integer instance counts x[o][t] into a full column vector: add/stop are the positive and negative
 * changes; unmet and buffer shortfall are the least that the coverage and gang rows require (shortfall first:
 * its penalty is lower). This is the cheapest completion, so its objective is the plan's objective.
 */
export function completeSolution(pm: PlanningModel, counts: readonly (readonly number[])[]): Float64Array {
  const { input, lp } = pm;
  const values = new Float64Array(lp.colNames.length);
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

  for (const cell of pm.bufferShort) {
    const members = input.offerings.flatMap((o, i) =>
      o.gpu === cell.gpu && o.regionGroup === cell.regionGroup ? [i] : [],
    );
    const classes = input.demand.flatMap((d, di) =>
      d.gpu === cell.gpu && d.regionGroup === cell.regionGroup ? [di] : [],
    );
    const sizes = [...new Set(classes.map((di) => input.demand[di]?.gangSize as number))].sort(
      (a, b) => b - a,
    );
    for (let t = 0; t < input.periods; t++) {
      const unmet = new Map<number, number>();
      // Gang thresholds from the largest down: unmet GPUs of classes with gang ≥ s must cover the row's deficit.
      for (const s of sizes) {
        const capacity = members.reduce(
          (sum, i) =>
            sum + s * Math.floor((input.offerings[i]?.gpusPerInstance as number) / s) * (counts[i]?.[t] ?? 0),
          0,
        );
        const atLeast = classes.filter((di) => (input.demand[di]?.gangSize as number) >= s);
        const need = atLeast.reduce((sum, di) => sum + (input.demand[di]?.gpus[t] ?? 0), 0);
        let deficit = need - capacity - atLeast.reduce((sum, di) => sum + (unmet.get(di) ?? 0), 0);
        for (const di of atLeast.filter((d) => input.demand[d]?.gangSize === s)) {
          const room = (input.demand[di]?.gpus[t] ?? 0) - (unmet.get(di) ?? 0);
          const take = Math.max(0, Math.min(room, deficit));
          unmet.set(di, (unmet.get(di) ?? 0) + take);
          deficit -= take;
        }
      }
      for (const [di, gpus] of unmet) values[pm.unmet[di]?.[t] as number] = gpus;
      // The coverage row: what is still missing goes to the buffer shortfall, then to any class with room.
      const capacity = members.reduce(
        (sum, i) => sum + (input.offerings[i]?.gpusPerInstance as number) * (counts[i]?.[t] ?? 0),
        0,
      );
      const need =
        classes.reduce((sum, di) => sum + (input.demand[di]?.gpus[t] ?? 0), 0) + (cell.gpus[t] ?? 0);
      let deficit = need - capacity - [...unmet.values()].reduce((a, b) => a + b, 0);
      const short = Math.max(0, Math.min(cell.gpus[t] ?? 0, deficit));
      values[cell.cols[t] as number] = short;
      deficit -= short;
      for (const di of classes) {
        if (deficit <= 0) break;
        const col = pm.unmet[di]?.[t] as number;
        const take = Math.min((input.demand[di]?.gpus[t] ?? 0) - (values[col] as number), deficit);
        values[col] = (values[col] as number) + take;
        deficit -= take;
      }
    }
  }
  return values;
}

/** Rounded instance counts x[o][t] from a column vector. */
export function readCounts(pm: PlanningModel, values: ArrayLike<number>): number[][] {
  return pm.x.map((cols) => cols.map((j) => Math.max(0, Math.round(values[j] as number))));
}
