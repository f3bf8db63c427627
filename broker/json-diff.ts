/** One changed leaf between two JSON values: its dotted path and both values (undefined when absent). */
export interface JsonChange {
  readonly path: string;
  readonly from: unknown;
  readonly to: unknown;
}

/** The leaves that differ between two JSON values, in a stable order (for policy audit trails). */
export function jsonDiff(before: unknown, after: unknown, path = ''): JsonChange[] {
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) => jsonDiff(before[key], after[key], path ? `${path}.${key}` : key));
  }
  return JSON.stringify(before) === JSON.stringify(after)
    ? []
    : [{ path: path || '.', from: before, to: after }];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
