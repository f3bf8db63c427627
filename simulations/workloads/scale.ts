/**
 * Scaling a workload without materialising it: ×N replays N copies of the trace overlaid, each shifted in time by
 * a seeded offset of up to `maxShiftMs` (copy 0 is not shifted; what a shift pushes past the trace's end wraps to
 * its start, so the length stays the same and the day's shape is kept); a fractional part replays one more copy
 * keeping each request with that probability. Speed divides arrival times (2: twice as fast; 0.5: half as fast;
 * service times and lease durations are unchanged). The copies are merged lazily in arrival order (a k-way merge
 * on a binary heap), so ×100 of a 27,000-request trace is 2.7 M requests in time order, never 2.7 M objects at once.
 */
import { ValidationError } from '../../lib/errors.ts';
import { Random } from '../../lib/random.ts';
import { HOUR_MS, type SimRequest, type Workload } from './workload.ts';

export interface ScaleOptions {
  /** Copies overlaid (> 0; 2.5 = two copies and half of a third). */
  readonly scale: number;
  /** Arrival-time divisor (> 0). */
  readonly speed: number;
  readonly seed: number;
  /** Largest shift of a copy; default one hour. */
  readonly maxShiftMs?: number;
}

export const MAX_SCALE = 10_000;

export function checkScale(options: ScaleOptions): void {
  if (!(options.scale > 0 && options.scale <= MAX_SCALE))
    throw new ValidationError('--scale', `must be a number above 0 and at most ${MAX_SCALE}`);
  if (!(options.speed > 0 && options.speed <= 1_000))
    throw new ValidationError('--speed', 'must be a number above 0 and at most 1000');
}

/** Length of the scaled workload's trace, ms. */
export function scaledDurationMs(workload: Workload, options: ScaleOptions): number {
  return Math.ceil(workload.durationMs / options.speed);
}

interface Cursor {
  readonly copy: number;
  readonly shiftMs: number;
  /** First index of the rotated order (requests that wrap around come first). */
  readonly first: number;
  /** Position in the rotated order, 0..n. */
  position: number;
  /** Time of the request at `position` (after shift and wrap, before speed). */
  atMs: number;
  readonly keep: Random | undefined;
  readonly keepProbability: number;
}

/** The scaled requests in arrival order, up to (not including) `untilMs` of scaled time. */
export function* scaledRequests(
  workload: Workload,
  options: ScaleOptions,
  untilMs = Number.POSITIVE_INFINITY,
): Generator<SimRequest> {
  checkScale(options);
  const { requests } = workload;
  const n = requests.length;
  if (n === 0) return;
  const duration = Math.max(1, workload.durationMs);
  const maxShift = Math.max(1, Math.min(duration, options.maxShiftMs ?? HOUR_MS));
  const random = new Random(`scale|${workload.name}|${options.seed}`);
  const copies = Math.ceil(options.scale - 1e-9);
  const fraction = options.scale - (copies - 1);
  const cursors: Cursor[] = [];
  for (let copy = 0; copy < copies; copy++) {
    const shiftMs = copy === 0 ? 0 : random.int(0, maxShift - 1);
    const first = lowerBound(requests, duration - shiftMs);
    const partial = copy === copies - 1 && fraction < 1 - 1e-9;
    const cursor: Cursor = {
      copy,
      shiftMs,
      first,
      position: 0,
      atMs: 0,
      keep: partial ? random.fork(`copy-${copy}`) : undefined,
      keepProbability: partial ? fraction : 1,
    };
    if (advance(cursor, requests, duration)) cursors.push(cursor);
  }
  const heap = new CursorHeap(cursors);
  for (;;) {
    const top = heap.peek();
    if (!top) return;
    const request = requests[(top.first + top.position) % n] as SimRequest;
    const atMs = Math.floor(top.atMs / options.speed);
    if (atMs >= untilMs) return;
    top.position++;
    if (advance(top, requests, duration)) heap.siftDown();
    else heap.pop();
    yield { ...request, atMs };
  }
}

/** Moves the cursor to its next kept request; false when the copy is exhausted. */
function advance(cursor: Cursor, requests: readonly SimRequest[], duration: number): boolean {
  const n = requests.length;
  for (; cursor.position < n; cursor.position++) {
    if (cursor.keep && !cursor.keep.chance(cursor.keepProbability)) continue;
    const index = (cursor.first + cursor.position) % n;
    const t = (requests[index] as SimRequest).atMs + cursor.shiftMs;
    cursor.atMs = t >= duration ? t - duration : t;
    return true;
  }
  return false;
}

/** First index whose arrival is ≥ atMs (requests are sorted). */
function lowerBound(requests: readonly SimRequest[], atMs: number): number {
  let lo = 0;
  let hi = requests.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((requests[mid] as SimRequest).atMs < atMs) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const before = (a: Cursor, b: Cursor) => a.atMs < b.atMs || (a.atMs === b.atMs && a.copy < b.copy);

/** Min-heap of cursors by (time, copy): ties go to the lower copy, so the order is deterministic. */
class CursorHeap {
  private readonly items: Cursor[] = [];

  constructor(cursors: readonly Cursor[]) {
    for (const c of cursors) this.push(c);
  }

  peek(): Cursor | undefined {
    return this.items[0];
  }

  pop(): void {
    const last = this.items.pop();
    if (last && this.items.length > 0) {
      this.items[0] = last;
      this.siftDown();
    }
  }

  /** Restores the heap after the top's key grew. */
  siftDown(): void {
    const items = this.items;
    const top = items[0] as Cursor;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child =
        right < items.length && before(items[right] as Cursor, items[left] as Cursor) ? right : left;
      if (!before(items[child] as Cursor, top)) break;
      items[i] = items[child] as Cursor;
      i = child;
    }
    items[i] = top;
  }

  private push(cursor: Cursor): void {
    const items = this.items;
    items.push(cursor);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(cursor, items[parent] as Cursor)) break;
      items[i] = items[parent] as Cursor;
      i = parent;
    }
    items[i] = cursor;
  }
}
