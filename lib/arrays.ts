/** Small array helpers shared across modules. */

/** Whether two arrays hold the same elements (`===`) in the same order. */
export function sameElements<T>(a: readonly T[], b: readonly T[]): boolean {
  return a === b || (a.length === b.length && a.every((v, i) => v === b[i]));
}
