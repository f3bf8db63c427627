export interface Point {
  readonly x: number;
  readonly y: number;
}

/**
 * At most `max` points of a line that keep its shape (Largest-Triangle-Three-Buckets: the first and the last
 * point, then from each bucket the point spanning the largest triangle with the previous pick and the next
 * bucket's mean), so peaks and drops survive where taking every k-th sample would skip them.
 * `xs` must be ascending; a line that already fits comes back whole.
 */
export function downsample(xs: readonly number[], ys: readonly number[], max: number): Point[] {
  const n = Math.min(xs.length, ys.length);
  const at = (i: number): Point => ({ x: xs[i] as number, y: ys[i] as number });
  if (n <= max) return Array.from({ length: n }, (_, i) => at(i));
  if (max < 3) return max <= 0 ? [] : max === 1 ? [at(0)] : [at(0), at(n - 1)];

  const bucket = (n - 2) / (max - 2);
  const out: Point[] = [at(0)];
  let previous = 0;
  for (let b = 0; b < max - 2; b++) {
    const nextStart = Math.floor((b + 1) * bucket) + 1;
    const nextEnd = Math.min(Math.floor((b + 2) * bucket) + 1, n);
    let meanX = 0;
    let meanY = 0;
    for (let i = nextStart; i < nextEnd; i++) {
      meanX += xs[i] as number;
      meanY += ys[i] as number;
    }
    const count = Math.max(nextEnd - nextStart, 1);
    meanX /= count;
    meanY /= count;

    const px = xs[previous] as number;
    const py = ys[previous] as number;
    const start = Math.floor(b * bucket) + 1;
    const end = Math.min(Math.floor((b + 1) * bucket) + 1, n - 1);
    let pick = start;
    let largest = -1;
    for (let i = start; i < end; i++) {
      const area = Math.abs(
        (px - meanX) * ((ys[i] as number) - py) - (px - (xs[i] as number)) * (meanY - py),
      );
      if (area > largest) {
        largest = area;
        pick = i;
      }
    }
    out.push(at(pick));
    previous = pick;
  }
  out.push(at(n - 1));
  return out;
}
