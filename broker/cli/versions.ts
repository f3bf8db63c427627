/**
 * What the versioned documents' commands (`policy`, `prices`) share: reading the JSON file a `set` sends, and
 * printing a version's header, its diff and the history.
 */
import { readFileSync } from 'node:fs';
import { ValidationError } from '../../lib/errors.ts';
import { parseJsonInput } from '../../lib/json-input.ts';
import { plainTable } from './billing-format.ts';

/** What every stored version carries (policy versions, price book versions). */
export interface StoredVersion {
  readonly version: number;
  readonly createdBy: string;
  readonly createdAtMs: number;
  readonly diff: readonly { readonly path: string; readonly from?: unknown; readonly to?: unknown }[];
}

/**
 * The file's JSON object; an unreadable file, bad JSON or a non-object is a ValidationError naming the file.
 * `what` names the document (`the policy`, `the price book`), `example` shows an object of it.
 */
export function readJsonObjectFile(file: string, what: string, example: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ValidationError(file, `cannot read ${what}: ${(error as Error).message}`);
  }
  // Reserved keys (`__proto__`) and unstorable text are refused here as the API refuses them.
  const input = parseJsonInput(text, file);
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new ValidationError(file, `${what.replace(/^the /, 'a ')} is a JSON object, e.g. ${example}`);
  return input as Record<string, unknown>;
}

/** `policy version 3, set by ops at …`; version 0 is described by `defaults`. */
export function describeVersion(kind: string, v: StoredVersion, defaults: string): string {
  if (v.version === 0) return `${kind} version 0: ${defaults}`;
  return `${kind} version ${v.version}, set by ${v.createdBy} at ${new Date(v.createdAtMs).toISOString()}`;
}

const shown = (value: unknown) => (value === undefined ? '(unset)' : JSON.stringify(value));

/** One line per changed field: `  spotMaxShare: 1 → 0.4`. */
export function renderDiff(v: StoredVersion): string {
  if (v.diff.length === 0) return '  no change from the version before\n';
  return v.diff.map((change) => `  ${change.path}: ${shown(change.from)} → ${shown(change.to)}\n`).join('');
}

/**
 * Every version, newest first as given: number, who, when and the fields it changed. The price book's history
 * right-aligns the version column as its other tables align numbers; the policy's keeps it left.
 */
export function renderHistory(
  kind: string,
  versions: readonly StoredVersion[],
  versionAlign: 'left' | 'right' = 'left',
): string {
  if (versions.length === 0) return `no ${kind} version stored yet: the defaults are in force\n`;
  const table = plainTable(['version', 'who', 'when', 'changed'], versionAlign === 'right' ? [0] : []);
  for (const v of versions)
    table.push([
      v.version,
      v.createdBy,
      new Date(v.createdAtMs).toISOString(),
      v.diff.map((change) => change.path).join(', ') || '(nothing)',
    ]);
  return `${table.toString()}\n`;
}
