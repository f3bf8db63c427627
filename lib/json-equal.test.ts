import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonEqual } from './json-equal.ts';
import { Random } from './random.ts';

/** The same value with every object's keys in a seeded random order (what a jsonb round trip may do). */
function reordered(value: unknown, random: Random): unknown {
  if (Array.isArray(value)) return value.map((v) => reordered(v, random));
  if (typeof value !== 'object' || value === null) return value;
  const entries = Object.entries(value);
  for (let i = entries.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [entries[i], entries[j]] = [entries[j] as [string, unknown], entries[i] as [string, unknown]];
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, reordered(v, random)]));
}

/** A reference: JSON text with every object's keys sorted. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

describe('jsonEqual', () => {
  it('finds a value equal to itself with its objects’ keys in any order, and after a JSON round trip', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer(), (value, seed) => {
        const shuffled = reordered(value, new Random(seed));
        expect(jsonEqual(value, shuffled)).toBe(true);
        expect(jsonEqual(shuffled, value)).toBe(true);
        expect(jsonEqual(value, JSON.parse(JSON.stringify(value)))).toBe(true);
      }),
    );
  });

  it('agrees with comparing the JSON texts with sorted keys', () => {
    const pair = fc.oneof(
      fc.tuple(fc.jsonValue(), fc.jsonValue()),
      fc.tuple(fc.jsonValue(), fc.integer()).map(([v, seed]) => [v, reordered(v, new Random(seed))] as const),
      fc
        .tuple(fc.jsonValue({ maxDepth: 2 }), fc.jsonValue({ maxDepth: 1 }), fc.string())
        .map(([v, extra, key]) => [{ key: v }, { key: v, [key]: extra }] as const),
    );
    fc.assert(
      fc.property(pair, ([a, b]) => {
        expect(jsonEqual(a, b)).toBe(canonical(a) === canonical(b));
      }),
    );
  });

  it('compares arrays in order, treats a key set to undefined as absent, and tells types apart', () => {
    expect(jsonEqual(['a', 'b'], ['b', 'a'])).toBe(false);
    expect(jsonEqual({ a: [1, { b: 2, c: 3 }] }, { a: [1, { c: 3, b: 2 }] })).toBe(true);
    expect(jsonEqual({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(jsonEqual({ a: 1 }, { a: 1, b: null })).toBe(false);
    expect(jsonEqual([], {})).toBe(false);
    expect(jsonEqual({ 0: 'x' }, ['x'])).toBe(false);
    expect(jsonEqual('1', 1)).toBe(false);
    expect(jsonEqual(null, {})).toBe(false);
  });
});
