/**
 * Demand: GPUs asked for now per (GPU type, region group, gang size), from open leases and from the runtime's
 * containers. One type and one key for everything that sums it (leases, runtime, forecast) and one pure check of
 * whether held capacity covers it (the shortfall trigger).
 */
import type { DemandClass } from '../solver/types.ts';

export interface Demand {
  readonly gpu: string;
  readonly regionGroup: string;
  /** GPUs that must share one instance (1: any spread). */
  readonly gangSize: number;
  readonly gpus: number;
}

/** The cell a demand belongs to: `gpu|regionGroup|gangSize`. */
export function demandKey(d: Pick<Demand, 'gpu' | 'regionGroup' | 'gangSize'>): string {
  return `${d.gpu}|${d.regionGroup}|${d.gangSize}`;
}

/** Sums demands of the same cell; cells keep the order in which they first appear. */
export function sumDemand(parts: Iterable<Demand>): Demand[] {
  const cells = new Map<string, Demand>();
  for (const d of parts) {
    if (d.gpus <= 0) continue;
    const key = demandKey(d);
    const cell = cells.get(key);
    cells.set(key, cell ? { ...cell, gpus: cell.gpus + d.gpus } : { ...d });
  }
  return [...cells.values()];
}

/** An instance as coverage counts it: its GPU type, region group and size. */
export interface HeldInstance {
  readonly gpu: string;
  readonly regionGroup: string | undefined;
  readonly gpusPerInstance: number;
}

/**
 * Whether `held` covers `demand`: per GPU type and region group in total GPUs, and per gang size in instances big
 * enough to hold whole gangs.
 */
export function coveredBy(demand: readonly Demand[], held: readonly HeldInstance[]): boolean {
  if (demand.length === 0) return true;
  const asked = new Map<string, number>();
  for (const d of demand) {
    const key = `${d.gpu}|${d.regionGroup}`;
    asked.set(key, (asked.get(key) ?? 0) + d.gpus);
    if (d.gangSize > 1) {
      let whole = 0;
      for (const i of held)
        if (i.gpu === d.gpu && i.regionGroup === d.regionGroup)
          whole += Math.floor(i.gpusPerInstance / d.gangSize) * d.gangSize;
      if (whole < d.gpus) return false;
    }
  }
  const have = new Map<string, number>();
  for (const i of held) {
    const key = `${i.gpu}|${i.regionGroup}`;
    have.set(key, (have.get(key) ?? 0) + i.gpusPerInstance);
  }
  for (const [key, gpus] of asked) if ((have.get(key) ?? 0) < gpus) return false;
  return true;
}

/**
 * What remains of forecast demand once capacity held outside the plan (machines of your own) is counted, period
 * by period: per GPU type and region group, the biggest gangs first, each on instances with room for whole gangs,
 * then single GPUs on what is left. Pure.
 */
export function netOfHeld(classes: readonly DemandClass[], held: readonly HeldInstance[]): DemandClass[] {
  if (held.length === 0) return classes.map((c) => ({ ...c, gpus: [...c.gpus] }));
  const net = classes.map((c) => ({ ...c, gpus: [...c.gpus] }));
  const periods = Math.max(0, ...net.map((c) => c.gpus.length));
  const order = [...net].sort((a, b) => b.gangSize - a.gangSize);
  for (let t = 0; t < periods; t++) {
    const free = new Map<string, number[]>();
    for (const i of held) {
      const key = `${i.gpu}|${i.regionGroup}`;
      const room = free.get(key) ?? [];
      room.push(i.gpusPerInstance);
      free.set(key, room);
    }
    for (const c of order) {
      const room = free.get(`${c.gpu}|${c.regionGroup}`);
      let need = c.gpus[t] ?? 0;
      if (!room || need <= 0) continue;
      const gang = Math.max(1, c.gangSize);
      for (let m = 0; m < room.length && need > 0; m++) {
        const fits = Math.floor((room[m] as number) / gang) * gang;
        const take = Math.min(fits, Math.floor(need / gang) * gang);
        room[m] = (room[m] as number) - take;
        need -= take;
      }
      c.gpus[t] = need;
    }
  }
  return net;
}
