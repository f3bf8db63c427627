import { describe, expect, it } from 'vitest';
import { downsample } from './downsample.ts';

const xs = Array.from({ length: 6_600 }, (_, i) => i);

describe('downsample', () => {
  it('returns a line that already fits unchanged', () => {
    expect(downsample([0, 1, 2], [5, 6, 7], 500)).toEqual([
      { x: 0, y: 5 },
      { x: 1, y: 6 },
      { x: 2, y: 7 },
    ]);
  });

  it('keeps at most the asked number of points, the first and the last among them, in order', () => {
    const points = downsample(
      xs,
      xs.map((x) => Math.sin(x / 50)),
      500,
    );
    expect(points).toHaveLength(500);
    expect(points[0]).toEqual({ x: 0, y: 0 });
    expect(points.at(-1)?.x).toBe(6_599);
    expect(points.every((p, i) => i === 0 || p.x > (points[i - 1]?.x ?? Number.NEGATIVE_INFINITY))).toBe(
      true,
    );
  });

  it('keeps a one-sample spike that taking every k-th sample would drop', () => {
    const ys = xs.map((x) => (x === 3_301 ? 40 : 2));
    expect(downsample(xs, ys, 500)).toContainEqual({ x: 3_301, y: 40 });
  });
});
