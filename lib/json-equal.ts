/**
 * Equality of JSON values by meaning: objects are equal when they have the same keys with equal values, in any
 * order (a key whose value is `undefined` counts as absent, as `JSON.stringify` drops it); arrays are equal element
 * by element, in order; numbers, strings, booleans and null compare with `===`. A value read back from a jsonb
 * column (which reorders keys) is therefore equal to the one written.
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((value, i) => jsonEqual(value, b[i]));
  }
  if (!isObject(a) || !isObject(b)) return false;
  const keys = definedKeys(a);
  const other = definedKeys(b);
  return (
    keys.length === other.length && keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]))
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function definedKeys(value: Record<string, unknown>): string[] {
  return Object.keys(value).filter((key) => value[key] !== undefined);
}
