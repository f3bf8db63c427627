/*
 * The capacity model. Names below are the names in the code and in the exported LP file.
 *
 * Sets
 *   O                offerings (vendor × region × instance type × capacity type), after reduce.ts removed dominated ones
 *   T = 1..H         planning periods of L hours
 *   K, R, V, Gr      GPU types, regions, vendors, region groups; k(o), r(o), v(o), g(o) those of offering o
 *   D                demand classes d = (k, g, s): GPU type, region group, gang size s (GPUs on one instance)
 * Parameters
 *   G_o GPUs per instance; p_o USD per instance-hour (0 for reserved); n_o instances held now; y_ot instances of o
 *   that are too young to stop in period t; dem_dt GPUs of class d; buf_kgt warm buffer GPUs; λ_o interruptions per
 *   hour (spot) or 0; P minutes of provisioning; W minutes of work lost per interruption
 * Variables
 *   x_o_t    integer ≥ y_ot     instances of o held in period t
 *   add_o_t  ≥ 0                instances of o added at the start of t (start-up cost)
 *   stop_o_t ≥ 0                instances of o stopped at the start of t (only with a churn limit)
 *   unmet_d_t  0 ≤ · ≤ dem_dt   GPUs of class d not covered
 *   short_k_g_t 0 ≤ · ≤ buf_kgt buffer GPUs not held
 * Objective (USD over the horizon), minimise
 *   instances     Σ_o,t L·p_o·x_o_t
 *   startup       Σ_o,t (P/60)·p_o·add_o_t
 *   interruption  Σ_o,t L·λ_o·((P+W)/60)·p_o·x_o_t
 *   unmet         Σ_d,t L·Munmet·unmet_d_t
 *   buffer        Σ_k,g,t L·Mbuffer·short_k_g_t
 * Constraints
 *   start_o_t        add_o_t − x_o_t + x_o_(t−1) ≥ 0                      (x_o_0 = n_o)
 *   cover_k_g_t      Σ_{o: k,g} G_o·x_o_t + Σ_{d: k,g} unmet_d_t + short_k_g_t ≥ Σ_{d: k,g} dem_dt + buf_kgt
 *   gang{s}_k_g_t    Σ_{o: k,g} s·⌊G_o/s⌋·x_o_t + Σ_{d: k,g,s_d ≥ s} unmet_d_t ≥ Σ_{d: k,g,s_d ≥ s} dem_dt   (s > 1)
 *   quota_v_r_t      Σ_{o: v,r} G_o·x_o_t ≤ Q_vr          quota_v_r_k_t: the same for one GPU type
 *   spot_k_g_t       Σ_{o: k,g, spot} G_o·x_o_t − φ·Σ_{o: k,g} G_o·x_o_t ≤ 0   (per region group: a group's spot
 *                    is backed by on-demand in that group, not by capacity bought elsewhere to dilute the share)
 *   spreadRegion_k_r_t  Σ_{o: k,r} G_o·x_o_t − σR·Σ_{o: k} G_o·x_o_t ≤ 0
 *   spreadVendor_k_v_t  Σ_{o: k,v} G_o·x_o_t − σV·Σ_{o: k} G_o·x_o_t ≤ 0
 *   budget_t         Σ_o p_o·x_o_t ≤ B
 *   stopDef_o_t      stop_o_t + x_o_t − x_o_(t−1) ≥ 0
 *   churn_t          Σ_o stop_o_t − χ·Σ_o x_o_(t−1) ≤ 0        (denied offerings' stops excluded)
 *   lifetime_o_t     x_o_t − Σ_{τ = t−m+1..t−1} add_o_τ ≥ y_ot   (m = ⌈min lifetime / L⌉ periods, when m ≥ 2)
 *   allow/deny       bounds: x_o_t ≤ y_ot for denied offerings; x_o_t ≤ n_o for unavailable ones
 * The gang rows are nested thresholds: exact when gang sizes and GPUs per instance are powers of two (every real
 * GPU instance is), a relaxation otherwise.
 * Structure (what solve.ts exploits; decompose.ts finds it from the rows, nothing is assumed): every column belongs
 * to one period. Only start, stopDef, churn and lifetime rows from the second period on join periods; quota rows
 * join GPU types only within one vendor × region; spread and budget rows join region groups.
 */
import { groupBy } from '../lib/arrays.ts';
import { microsToUsd } from '../lib/money.ts';
import type { Offering } from '../providers/catalog/offering.ts';
import { type LinearModel, LinearModelBuilder, lpPart, NamedWhenRead } from './linear-model.ts';
import { bufferFor, bufferGpus, interruptionsPerHour, type PlanningPolicy } from './policy.ts';
import { type DemandClass, type Quota, quotaCovers, quotaLabel } from './types.ts';

/** The planning problem after reduction: what the model is built from. */
export interface ModelInput {
  offerings: readonly Offering[];
  demand: readonly DemandClass[];
  policy: PlanningPolicy;
  periods: number;
  /** Instances held now, per offering index. */
  current: readonly number[];
  /** Instances that must be kept in each period (minimum lifetime), per offering index and period. */
  protectedCounts: readonly (readonly number[])[];
  /** Upper bound on instances per offering and period (unavailable, denied, dominated, or no use for more). */
  maxCount: readonly (readonly number[])[];
  /** Offerings whose stops do not count against the churn limit (denied by policy). */
  churnExempt: readonly boolean[];
  quotas: readonly Quota[];
}

/** A built model with the column indices needed to read a solution back. */
export interface PlanningModel {
  readonly lp: LinearModel;
  readonly input: ModelInput;
  /** x[o][t]: instances of offering o in period t. */
  readonly x: number[][];
  /** add[o][t]: instances added. */
  readonly add: number[][];
  /** stop[o][t]: instances stopped (only with a churn limit; -1 where absent). */
  readonly stop: number[][];
  /** unmet[d][t]: unmet GPUs of demand class d. */
  readonly unmet: number[][];
  readonly bufferShort: { gpu: string; regionGroup: string; cols: number[]; gpus: number[] }[];
  /** Hours per period. */
  readonly periodHours: number;
  /** The period (0-based) each column belongs to: decompose.ts splits the model by it. */
  readonly colPeriod: Int32Array;
  /**
   * What fixes the model's columns, rows, coefficients, costs and names (offerings, demand classes, quota keys,
   * policy, periods): two inputs with the same key give models that differ only in the numbers `fill` writes.
   */
  readonly key: string;
  /** Writes the numbers that follow from the demand, the fleet and the quota limits (see updateModel). */
  readonly fill: (input: ModelInput, lp: LinearModel, shortGpus: number[][]) => void;
}

const period = (t: number) => `t${t + 1}`;

/** An offering's id as a part of LP names, cleaned once rather than in each of its thousands of names. */
const safeIds = new WeakMap<Offering, string>();
function safeId(o: Offering): string {
  let id = safeIds.get(o);
  if (id === undefined) {
    id = lpPart(o.id);
    safeIds.set(o, id);
  }
  return id;
}

export function buildModel(input: ModelInput): PlanningModel {
  const { offerings, demand, policy, periods } = input;
  const L = policy.periodMinutes / 60;
  const P = policy.provisioningMinutes / 60;
  const W = policy.interruptionLostMinutes / 60;
  const b = new LinearModelBuilder('gpubroker_capacity_plan');
  // Bounds and right-hand sides that follow from the demand, the fleet and the quota limits are written by `fill`
  // (below), once the columns and rows exist: a warm re-plan of the same structure rewrites only them (updateModel).
  const x: number[][] = [];
  const add: number[][] = [];
  offerings.forEach((o) => {
    const price = o.capacityType === 'reserved' ? 0 : microsToUsd(o.microsPerHour);
    const lambda = o.capacityType === 'spot' ? interruptionsPerHour(policy, o.vendor) : 0;
    const hourly = L * price * (1 + lambda * (P + W));
    const xs: number[] = [];
    const adds: number[] = [];
    for (let t = 0; t < periods; t++) xs.push(b.addColumn(`x_${safeId(o)}_${period(t)}`, 0, 0, hourly, true));
    for (let t = 0; t < periods; t++)
      adds.push(b.addColumn(`add_${safeId(o)}_${period(t)}`, 0, Number.POSITIVE_INFINITY, P * price, false));
    x.push(xs);
    add.push(adds);
  });

  const unmet = demand.map((d) =>
    d.gpus.map((_, t) =>
      b.addColumn(
        `unmet_${d.gpu}_${d.regionGroup}_g${d.gangSize}_${period(t)}`,
        0,
        0,
        L * policy.unmetPenaltyUsdPerGpuHour,
        false,
      ),
    ),
  );

  // Demand grouped by (GPU type, region group): one coverage row each, one gang row per gang size > 1.
  const cells = new Map<string, { gpu: string; regionGroup: string; classes: number[] }>();
  demand.forEach((d, di) => {
    const key = `${d.gpu}\u0000${d.regionGroup}`;
    const cell = cells.get(key) ?? { gpu: d.gpu, regionGroup: d.regionGroup, classes: [] };
    cell.classes.push(di);
    cells.set(key, cell);
  });

  const bufferShort: PlanningModel['bufferShort'] = [];
  /** Per cell: its coverage row and its gang rows (gang size, row, the classes it counts) per period. */
  const cellRows: { cover: number[]; gangs: { size: number; rows: number[]; classes: number[] }[] }[] = [];
  for (const cell of cells.values()) {
    const members = offerings.flatMap((o, i) =>
      o.gpu === cell.gpu && o.regionGroup === cell.regionGroup ? [i] : [],
    );
    const short = {
      gpu: cell.gpu,
      regionGroup: cell.regionGroup,
      cols: [] as number[],
      gpus: [] as number[],
    };
    const gangSizes = [...new Set(cell.classes.map((di) => demand[di]?.gangSize as number))]
      .filter((s) => s > 1)
      .sort((a, c) => a - c);
    const rows = {
      cover: [] as number[],
      gangs: gangSizes.map((size) => ({
        size,
        rows: [] as number[],
        classes: cell.classes.filter((di) => (demand[di]?.gangSize as number) >= size),
      })),
    };
    for (let t = 0; t < periods; t++) {
      const shortCol = b.addColumn(
        `short_${cell.gpu}_${cell.regionGroup}_${period(t)}`,
        0,
        0,
        L * policy.bufferPenaltyUsdPerGpuHour,
        false,
      );
      short.cols.push(shortCol);
      const cols = [
        ...members.map((i) => x[i]?.[t] as number),
        ...cell.classes.map((di) => unmet[di]?.[t] as number),
        shortCol,
      ];
      const coefs = [
        ...members.map((i) => offerings[i]?.gpusPerInstance as number),
        ...cell.classes.map(() => 1),
        1,
      ];
      rows.cover.push(
        b.addRow(
          `cover_${cell.gpu}_${cell.regionGroup}_${period(t)}`,
          'coverage',
          0,
          Number.POSITIVE_INFINITY,
          cols,
          coefs,
          `coverage ${cell.gpu}/${cell.regionGroup}`,
        ),
      );

      for (const gang of rows.gangs) {
        const s = gang.size;
        const gangCols = [
          ...members.map((i) => x[i]?.[t] as number),
          ...gang.classes.map((di) => unmet[di]?.[t] as number),
        ];
        const gangCoefs = [
          ...members.map((i) => s * Math.floor((offerings[i]?.gpusPerInstance as number) / s)),
          ...gang.classes.map(() => 1),
        ];
        gang.rows.push(
          b.addRow(
            `gang${s}_${cell.gpu}_${cell.regionGroup}_${period(t)}`,
            'gang',
            0,
            Number.POSITIVE_INFINITY,
            gangCols,
            gangCoefs,
            `${s}-GPU gangs ${cell.gpu}/${cell.regionGroup}`,
          ),
        );
      }
    }
    bufferShort.push(short);
    cellRows.push(rows);
  }

  // start_o_t: add ≥ x_t − x_(t−1)
  const firstStart: number[] = [];
  offerings.forEach((_, i) => {
    for (let t = 0; t < periods; t++) {
      const cols = [add[i]?.[t] as number, x[i]?.[t] as number];
      const coefs = [1, -1];
      if (t > 0) {
        cols.push(x[i]?.[t - 1] as number);
        coefs.push(1);
      }
      const row = b.addRow(
        `start_${safeId(offerings[i] as Offering)}_${period(t)}`,
        'link',
        0,
        Number.POSITIVE_INFINITY,
        cols,
        coefs,
      );
      if (t === 0) firstStart.push(row);
    }
  });

  const quotaRows = addQuotaRows(b, input, x);
  addShareRows(b, input, x);

  if (policy.budgetUsdPerHour !== null) {
    for (let t = 0; t < periods; t++) {
      const members = offerings.flatMap((o, i) => (o.capacityType === 'reserved' ? [] : [i]));
      b.addRow(
        `budget_${period(t)}`,
        'budget',
        Number.NEGATIVE_INFINITY,
        policy.budgetUsdPerHour,
        members.map((i) => x[i]?.[t] as number),
        members.map((i) => microsToUsd(offerings[i]?.microsPerHour as number)),
        `budget $${policy.budgetUsdPerHour}/h`,
      );
    }
  }

  const stop = offerings.map(() => Array.from({ length: periods }, () => -1));
  const churnRows = policy.maxTerminateFraction < 1 ? addChurnRows(b, input, x, stop) : undefined;
  const lifetimeRows = addLifetimeRows(b, input, x, add);

  const colPeriod = new Int32Array(b.model.colCost.length);
  for (const cols of [...x, ...add, ...stop, ...unmet, ...bufferShort.map((s) => s.cols)])
    cols.forEach((j, t) => {
      if (j >= 0) colPeriod[j] = t;
    });

  /** The numbers that follow from the demand, the fleet (held, protected, bounds) and the quota limits. */
  const fill = (inp: ModelInput, lp: LinearModel, shortGpus: number[][]): void => {
    x.forEach((cols, i) => {
      cols.forEach((j, t) => {
        const lower = inp.protectedCounts[i]?.[t] ?? 0;
        lp.colLower[j] = lower;
        lp.colUpper[j] = Math.max(lower, inp.maxCount[i]?.[t] ?? Number.POSITIVE_INFINITY);
      });
    });
    unmet.forEach((cols, di) => {
      cols.forEach((j, t) => {
        lp.colUpper[j] = inp.demand[di]?.gpus[t] ?? 0;
      });
    });
    [...cells.values()].forEach((cell, c) => {
      const short = bufferShort[c] as PlanningModel['bufferShort'][number];
      const rows = cellRows[c] as (typeof cellRows)[number];
      const buffer = bufferFor(inp.policy, cell.gpu);
      const gpus = shortGpus[c] as number[];
      for (let t = 0; t < periods; t++) {
        const demandGpus = cell.classes.reduce((sum, di) => sum + (inp.demand[di]?.gpus[t] ?? 0), 0);
        const bufferT = bufferGpus(buffer, demandGpus);
        gpus[t] = bufferT;
        lp.colUpper[short.cols[t] as number] = bufferT;
        lp.rowLower[rows.cover[t] as number] = demandGpus + bufferT;
        for (const gang of rows.gangs)
          lp.rowLower[gang.rows[t] as number] = gang.classes.reduce(
            (sum, di) => sum + (inp.demand[di]?.gpus[t] ?? 0),
            0,
          );
      }
    });
    firstStart.forEach((row, i) => {
      lp.rowLower[row] = -(inp.current[i] ?? 0);
    });
    for (const { quota, rows } of quotaRows) {
      const q = inp.quotas[quota] as Quota;
      for (const row of rows) {
        lp.rowUpper[row] = q.maxGpus;
        lp.rowLabels[row] = `quota ${quotaLabel(q)} (${q.maxGpus} GPUs)`;
      }
    }
    if (churnRows) {
      churnRows.firstStopDef.forEach((row, i) => {
        if (row >= 0) lp.rowLower[row] = inp.current[i] ?? 0;
      });
      const fleet = inp.offerings.reduce(
        (sum, _, i) => (inp.churnExempt[i] ? sum : sum + (inp.current[i] ?? 0)),
        0,
      );
      lp.rowUpper[churnRows.first] = inp.policy.maxTerminateFraction * fleet;
    }
    lifetimeRows.forEach((rows, i) => {
      rows.forEach((row, t) => {
        if (row >= 0) lp.rowLower[row] = inp.protectedCounts[i]?.[t] ?? 0;
      });
    });
  };
  const lp = b.model;
  const gpusPerCell = bufferShort.map((short) => short.gpus);
  fill(input, lp, gpusPerCell);
  return {
    lp,
    input,
    x,
    add,
    stop,
    unmet,
    bufferShort,
    periodHours: L,
    colPeriod,
    key: structureKey(input),
    fill,
  };
}

/**
 * What fixes a model's columns, rows, coefficients, costs and names: the offerings (and what the model reads of
 * them), the demand classes (not their GPUs), the quotas (not their limits), the policy, the periods, which
 * offerings the churn rule exempts and which have lifetime rows. The rest is what `fill` writes.
 */
function structureKey(input: ModelInput): string {
  return JSON.stringify([
    input.periods,
    input.policy,
    input.offerings.map((o) => [
      o.id,
      o.vendor,
      o.region,
      o.regionGroup,
      o.gpu,
      o.gpusPerInstance,
      o.capacityType,
      o.microsPerHour,
    ]),
    input.demand.map((d) => [d.gpu, d.regionGroup, d.gangSize]),
    input.quotas.map((q) => [q.vendor, q.region, q.gpu ?? null, q.capacityType ?? null]),
    input.churnExempt,
    input.maxCount.map((counts) => counts.every((c) => c === 0)),
  ]);
}

/**
 * The model of `input`, from `previous` when both have the same structure (the broker's next tick: demand, fleet
 * or quota limits moved): its columns, rows, coefficients, costs and names are shared, and only the numbers that
 * follow from the demand, the fleet and the quota limits are written again, by the same code that wrote them in
 * buildModel. Otherwise a new model. Either way the result equals buildModel(input) number for number (tested).
 */
export function updateModel(previous: PlanningModel, input: ModelInput): PlanningModel {
  const key = structureKey(input);
  if (key !== previous.key) return buildModel(input);
  const old = previous.lp;
  const lp = new NamedWhenRead(
    {
      name: old.name,
      colLower: Float64Array.from(old.colLower),
      colUpper: Float64Array.from(old.colUpper),
      colCost: Float64Array.from(old.colCost),
      colInteger: old.colInteger,
      rowKinds: old.rowKinds,
      rowLabels: [...old.rowLabels],
      rowLower: Float64Array.from(old.rowLower),
      rowUpper: Float64Array.from(old.rowUpper),
      rowStarts: old.rowStarts,
      rowIndices: old.rowIndices,
      rowValues: old.rowValues,
    },
    () => ({ cols: old.colNames, rows: old.rowNames }),
  );
  const bufferShort = previous.bufferShort.map((short) => ({ ...short, gpus: [...short.gpus] }));
  previous.fill(
    input,
    lp,
    bufferShort.map((short) => short.gpus),
  );
  return { ...previous, lp, input, bufferShort, key };
}

/** quota rows, per quota (index in input.quotas) and period; their limits are written by `fill`. */
function addQuotaRows(
  b: LinearModelBuilder,
  input: ModelInput,
  x: number[][],
): { quota: number; rows: number[] }[] {
  const { offerings, periods } = input;
  const out: { quota: number; rows: number[] }[] = [];
  input.quotas.forEach((q, quota) => {
    const members = offerings.flatMap((o, i) => (quotaCovers(q, o) ? [i] : []));
    if (members.length === 0) return;
    const rows: number[] = [];
    for (let t = 0; t < periods; t++) {
      rows.push(
        b.addRow(
          `quota_${q.vendor}_${q.region}${q.gpu ? `_${q.gpu}` : ''}${q.capacityType ? `_${q.capacityType}` : ''}_${period(t)}`,
          'quota',
          Number.NEGATIVE_INFINITY,
          0,
          members.map((i) => x[i]?.[t] as number),
          members.map((i) => offerings[i]?.gpusPerInstance as number),
        ),
      );
    }
    out.push({ quota, rows });
  });
  return out;
}

/** spot_k_g_t, spreadRegion_k_r_t, spreadVendor_k_v_t: a part of a GPU type's capacity ≤ a share of all of it. */
function addShareRows(b: LinearModelBuilder, input: ModelInput, x: number[][]): void {
  const { offerings, policy, periods } = input;
  const byGpu = groupBy(
    offerings.map((_, i) => i),
    (i) => (offerings[i] as Offering).gpu,
  );

  const shareRows = (
    name: string,
    kind: 'spot' | 'spread',
    gpuMembers: number[],
    part: number[],
    share: number,
    label: string,
  ) => {
    if (part.length === 0) return;
    const inPart = new Set(part);
    for (let t = 0; t < periods; t++) {
      b.addRow(
        `${name}_${period(t)}`,
        kind,
        Number.NEGATIVE_INFINITY,
        0,
        gpuMembers.map((i) => x[i]?.[t] as number),
        gpuMembers.map((i) => (offerings[i]?.gpusPerInstance as number) * ((inPart.has(i) ? 1 : 0) - share)),
        label,
      );
    }
  };
  for (const [gpu, members] of byGpu) {
    if (policy.spotMaxShare < 1) {
      for (const group of new Set(members.map((i) => offerings[i]?.regionGroup as string))) {
        const inGroup = members.filter((i) => offerings[i]?.regionGroup === group);
        shareRows(
          `spot_${gpu}_${group}`,
          'spot',
          inGroup,
          inGroup.filter((i) => offerings[i]?.capacityType === 'spot'),
          policy.spotMaxShare,
          `spot share ${gpu}/${group} ≤ ${policy.spotMaxShare}`,
        );
      }
    }
    if (policy.maxRegionShare < 1) {
      for (const region of new Set(members.map((i) => `${offerings[i]?.vendor}/${offerings[i]?.region}`))) {
        const part = members.filter((i) => `${offerings[i]?.vendor}/${offerings[i]?.region}` === region);
        shareRows(
          `spreadRegion_${gpu}_${region}`,
          'spread',
          members,
          part,
          policy.maxRegionShare,
          `region share ${gpu} ${region}`,
        );
      }
    }
    if (policy.maxVendorShare < 1) {
      for (const vendor of new Set(members.map((i) => offerings[i]?.vendor as string))) {
        const part = members.filter((i) => offerings[i]?.vendor === vendor);
        shareRows(
          `spreadVendor_${gpu}_${vendor}`,
          'spread',
          members,
          part,
          policy.maxVendorShare,
          `vendor share ${gpu} ${vendor}`,
        );
      }
    }
  }
}

/** stopDef and churn rows; returns the rows whose sides `fill` writes (the first period's). */
function addChurnRows(
  b: LinearModelBuilder,
  input: ModelInput,
  x: number[][],
  stopCols: number[][],
): { firstStopDef: number[]; first: number } {
  const { offerings, periods, policy } = input;
  const firstStopDef = offerings.map(() => -1);
  let first = -1;
  for (let t = 0; t < periods; t++) {
    const stops: number[] = [];
    offerings.forEach((o, i) => {
      if (input.churnExempt[i]) return;
      const stop = b.addColumn(`stop_${safeId(o)}_${period(t)}`, 0, Number.POSITIVE_INFINITY, 0, false);
      stops.push(stop);
      (stopCols[i] as number[])[t] = stop;
      const cols = [stop, x[i]?.[t] as number];
      const coefs = [1, 1];
      if (t > 0) {
        cols.push(x[i]?.[t - 1] as number);
        coefs.push(-1);
      }
      const row = b.addRow(
        `stopDef_${safeId(o)}_${period(t)}`,
        'link',
        0,
        Number.POSITIVE_INFINITY,
        cols,
        coefs,
      );
      if (t === 0) firstStopDef[i] = row;
    });
    const held = offerings.flatMap((_, i) => (input.churnExempt[i] ? [] : [i]));
    if (t === 0) {
      first = b.addRow(
        `churn_${period(t)}`,
        'churn',
        Number.NEGATIVE_INFINITY,
        0,
        stops,
        stops.map(() => 1),
        'scale-down budget',
      );
    } else {
      b.addRow(
        `churn_${period(t)}`,
        'churn',
        Number.NEGATIVE_INFINITY,
        0,
        [...stops, ...held.map((i) => x[i]?.[t - 1] as number)],
        [...stops.map(() => 1), ...held.map(() => -policy.maxTerminateFraction)],
        'scale-down budget',
      );
    }
  }
  return { firstStopDef, first };
}

/**
 * lifetime_o_t: instances added in the last m − 1 periods are still too young to stop. Returns the rows per
 * offering and period (−1 where none); their sides (the protected counts) are written by `fill`.
 */
function addLifetimeRows(
  b: LinearModelBuilder,
  input: ModelInput,
  x: number[][],
  add: number[][],
): number[][] {
  const { offerings, periods, policy } = input;
  const rows = offerings.map(() => new Array<number>(periods).fill(-1));
  const m = Math.ceil(policy.minLifetimeMinutes / policy.periodMinutes);
  if (m < 2) return rows;
  offerings.forEach((o, i) => {
    if (input.maxCount[i]?.every((c) => c === 0)) return;
    for (let t = 1; t < periods; t++) {
      const recent: number[] = [];
      for (let tau = Math.max(0, t - m + 1); tau < t; tau++) recent.push(add[i]?.[tau] as number);
      (rows[i] as number[])[t] = b.addRow(
        `lifetime_${safeId(o)}_${period(t)}`,
        'lifetime',
        0,
        Number.POSITIVE_INFINITY,
        [x[i]?.[t] as number, ...recent],
        [1, ...recent.map(() => -1)],
        `minimum lifetime ${o.id}`,
      );
    }
  });
  return rows;
}
