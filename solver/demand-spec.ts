import { distance } from 'fastest-levenshtein';
import { ValidationError } from '../lib/errors.ts';
import type { Offering } from '../providers/catalog/offering.ts';
import type { DemandClass } from './types.ts';

const MAX_GPUS = 1_000_000;

/**
 * Parses a demand spec: `GPU:COUNT[xGANG]@GROUP`, comma separated, e.g. `H100:64@us,H100:16x8@us`.
 * COUNT is GPUs (a multiple of GANG); GANG is the GPUs that must share one instance. The same demand holds in each
 * of `periods` periods. GPU names and region groups are checked against the catalog.
 */
export function parseDemandSpec(spec: string, offerings: readonly Offering[], periods = 1): DemandClass[] {
  const gpus = [...new Set(offerings.map((o) => o.gpu))].sort();
  const groups = [...new Set(offerings.map((o) => o.regionGroup))].sort();
  const classes = new Map<string, DemandClass>();
  const parts = spec.split(',').map((p) => p.trim());
  if (spec.trim() === '')
    throw new ValidationError('--demand', 'is empty; expected GPU:COUNT[xGANG]@GROUP, e.g. H100:64@us');
  for (const part of parts) {
    const match = /^([A-Za-z0-9][A-Za-z0-9._-]*):(\d+)(?:x(\d+))?@([a-z][a-z0-9-]*)$/.exec(part);
    if (!match)
      throw new ValidationError('--demand', `"${part}" is not GPU:COUNT[xGANG]@GROUP (e.g. H100:16x8@us)`);
    const [, gpuName = '', countText = '', gangText, group = ''] = match;
    const gpu = gpus.find((g) => g.toLowerCase() === gpuName.toLowerCase());
    if (!gpu)
      throw new ValidationError(
        '--demand',
        `unknown GPU type "${gpuName}"; did you mean ${closest(gpuName, gpus)}?`,
      );
    if (!groups.includes(group))
      throw new ValidationError('--demand', `unknown region group "${group}"; groups: ${groups.join(', ')}`);
    const count = Number(countText);
    const gang = gangText === undefined ? 1 : Number(gangText);
    if (count > MAX_GPUS)
      throw new ValidationError('--demand', `${count} GPUs in "${part}" is more than ${MAX_GPUS}`);
    const maxGang = Math.max(...offerings.filter((o) => o.gpu === gpu).map((o) => o.gpusPerInstance));
    if (gang < 1 || gang > maxGang)
      throw new ValidationError(
        '--demand',
        `gang size ${gang} in "${part}": ${gpu} instances have 1 to ${maxGang} GPUs`,
      );
    if (count % gang !== 0)
      throw new ValidationError(
        '--demand',
        `"${part}": ${count} GPUs is not a whole number of ${gang}-GPU gangs`,
      );
    const key = `${gpu}/${group}/${gang}`;
    const existing = classes.get(key);
    if (existing) existing.gpus = existing.gpus.map((g) => g + count);
    else
      classes.set(key, {
        gpu,
        regionGroup: group,
        gangSize: gang,
        gpus: Array.from({ length: periods }, () => count),
      });
  }
  return [...classes.values()];
}

/** The two catalog names nearest to a misspelt one. */
export function closest(name: string, candidates: readonly string[]): string {
  return [...candidates]
    .sort(
      (a, b) =>
        distance(name.toLowerCase(), a.toLowerCase()) - distance(name.toLowerCase(), b.toLowerCase()) ||
        a.localeCompare(b),
    )
    .slice(0, 2)
    .join(' or ');
}
