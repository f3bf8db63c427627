/** What the packaging tests measure: the bytes of an installed package, against the SDK's limit. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The most the SDK may weigh installed, with its dependencies (it has none). */
export const MAX_INSTALLED_BYTES = 5 * 1024 * 1024;

/** Bytes of every file under `dir`. */
export function bytesUnder(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? bytesUnder(path) : statSync(path).size;
  }
  return total;
}
