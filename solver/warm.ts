import type { Part, Structure } from './decompose.ts';
import type { LinearModel } from './linear-model.ts';
import type { PlanningModel } from './model.ts';

/**
 * What a plan keeps for the next one (continual re-solving): the broker's next tick passes the previous plan back
 * as `PlanInput.previous`, and a model of the same shape (same offerings after reduction, demand classes, quotas,
 * periods and rules; numbers may differ) is solved from there:
 *  - the Lagrangian multipliers: the next solve prices its linking rows the same, so every block whose numbers
 *    did not change (all but the periods and region groups where demand or the fleet moved) is the same MIP, and
 *  - the block results: such a block's solution and bound are taken as they are;
 *  - the LP basis: the LP relaxation restarts from it;
 *  - the plan: what it holds in each period is a candidate for that period again;
 *  - the model and its structure: a next model of the same structure is the same columns and rows with new
 *    bounds (model.ts, updateModel), whose names, matrix and blocks are shared rather than made again.
 * Any multipliers give a valid bound; when stale ones leave the plan outside the gap, the solve prices the blocks
 * afresh with the new LP's duals.
 */
export interface WarmState {
  readonly shape: Shape;
  readonly multipliers: Float64Array;
  readonly blocks: BlockCache;
  readonly basis?: { colStatus: Int32Array; rowStatus: Int32Array };
  /** The plan's columns: its instance counts per period are candidates for the next plan's periods. */
  readonly plan?: Float64Array;
  readonly model: PlanningModel;
  readonly structure?: Structure;
  /** The blocks' last MIPs, to find those whose numbers did not change without cutting them out again. */
  readonly blockMemo?: BlockMemo;
}

/** The model's shape: what must match for rows and columns to mean the same thing in the next model. */
interface Shape {
  offerings: string;
  rowKinds: string;
  rowStarts: Int32Array;
  rowIndices: Int32Array;
}

/** The model's arrays are kept, not copied: nothing changes a model's matrix once built. */
export function shapeOf(pm: PlanningModel): Shape {
  const { lp } = pm;
  return {
    offerings: pm.input.offerings.map((o) => o.id).join('\n'),
    rowKinds: lp.rowKinds.join(','),
    rowStarts: lp.rowStarts,
    rowIndices: lp.rowIndices,
  };
}

export function sameShape(a: Shape, b: Shape): boolean {
  return (
    a.offerings === b.offerings &&
    a.rowKinds === b.rowKinds &&
    equalInts(a.rowStarts, b.rowStarts) &&
    equalInts(a.rowIndices, b.rowIndices)
  );
}

function equalInts(a: Int32Array, b: Int32Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

export interface BlockResult {
  values: Float64Array | undefined;
  bound: number;
}

/** A block MIP by its exact numbers: every cost, bound and coefficient (made once per block and solve). */
export interface BlockKey {
  readonly data: Float64Array;
  readonly hash: string;
}

export function blockKey(model: LinearModel): BlockKey {
  const data = fingerprint(model);
  return { data, hash: hashOf(data) };
}

/** Block MIP results by their exact numbers: a hit needs every cost, bound and coefficient to be equal. */
export class BlockCache {
  private readonly entries = new Map<string, { data: Float64Array; result: BlockResult }>();

  get(key: BlockKey): BlockResult | undefined {
    const entry = this.entries.get(key.hash);
    return entry && equalFloats(entry.data, key.data) ? entry.result : undefined;
  }

  set(key: BlockKey, result: BlockResult): void {
    this.entries.set(key.hash, { data: key.data, result });
  }

  get size(): number {
    return this.entries.size;
  }
}

interface Remembered {
  key: BlockKey;
  result: BlockResult;
  /** The block's columns' costs when it was solved. */
  cost: Float64Array;
}

/**
 * Per block of one structure: its last key and result and the costs they were made with. A block is the same MIP
 * as before when its columns' costs and bounds and its rows' bounds are the same numbers (the structure, and so
 * its matrix, is shared): then neither its model nor its fingerprint is made again (70 of 72 blocks of a warm (b)
 * tick).
 */
export class BlockMemo {
  private readonly entries: (Remembered | undefined)[] = [];

  /** `lp`: the model the remembered blocks were cut from. */
  constructor(readonly lp: LinearModel) {}

  find(b: number, block: Part, lp: LinearModel, cost: ArrayLike<number>): Remembered | undefined {
    const entry = this.entries[b];
    if (!entry) return undefined;
    const held = this.lp;
    for (let k = 0; k < block.cols.length; k++) {
      const j = block.cols[k] as number;
      if (
        !Object.is(entry.cost[k], cost[j]) ||
        !Object.is(held.colLower[j], lp.colLower[j]) ||
        !Object.is(held.colUpper[j], lp.colUpper[j])
      )
        return undefined;
    }
    for (const i of block.rows)
      if (!Object.is(held.rowLower[i], lp.rowLower[i]) || !Object.is(held.rowUpper[i], lp.rowUpper[i]))
        return undefined;
    return entry;
  }

  set(b: number, block: Part, cost: ArrayLike<number>, key: BlockKey, result: BlockResult): void {
    const costs = new Float64Array(block.cols.length);
    for (let k = 0; k < block.cols.length; k++) costs[k] = cost[block.cols[k] as number] as number;
    this.entries[b] = { key, result, cost: costs };
  }
}

/** Every number of a model, in one array. */
function fingerprint(m: LinearModel): Float64Array {
  const parts = [
    [m.colCost.length, m.rowLower.length],
    m.colCost,
    m.colLower,
    m.colUpper,
    m.colInteger.map(Number),
    m.rowLower,
    m.rowUpper,
    m.rowStarts,
    m.rowIndices,
    m.rowValues,
  ];
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    for (let k = 0; k < p.length; k++) out[at++] = p[k] as number;
  }
  return out;
}

function equalFloats(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (!Object.is(a[k], b[k])) return false;
  return true;
}

/** Two 32-bit FNV-1a style hashes over the numbers' bits. */
function hashOf(data: Float64Array): string {
  const words = new Uint32Array(data.buffer, data.byteOffset, data.length * 2);
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let k = 0; k < words.length; k++) {
    const w = words[k] as number;
    h1 = Math.imul(h1 ^ w, 0x01000193);
    h2 = Math.imul(h2 ^ w, 0x5bd1e995) ^ (h2 >>> 15);
  }
  return `${data.length}:${(h1 >>> 0).toString(36)}:${(h2 >>> 0).toString(36)}`;
}
