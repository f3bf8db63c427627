/**
 * Where a VM size can be deployed, from Resource Skus - List (`$filter=location eq '<region>'`): the zones of the
 * region that have the size, minus those restricted for this subscription. A size restricted for the whole location,
 * or absent from it, has no zone.
 * https://learn.microsoft.com/en-us/rest/api/compute/resource-skus/list
 */
import type { ResourceSku } from '@azure/arm-compute';

export interface SizePlacement {
  /** Azure zones ("1", "2", …) the size exists in; empty for a region without zones. */
  readonly zones: readonly string[];
  /** Zones (or, for a region without zones, the region itself as "") the subscription may deploy to now. */
  readonly open: readonly string[];
}

/** VM sizes of one region, keyed by lower-case size name. */
export function sizePlacements(skus: readonly ResourceSku[], region: string): Map<string, SizePlacement> {
  const out = new Map<string, SizePlacement>();
  const location = region.toLowerCase();
  for (const sku of skus) {
    if (sku.resourceType !== 'virtualMachines' || !sku.name) continue;
    const info = sku.locationInfo?.find((l) => l.location?.toLowerCase() === location);
    if (!info && !sku.locations?.some((l) => l.toLowerCase() === location)) continue;
    const zones = [...(info?.zones ?? [])].sort();
    let blockedZones = new Set<string>();
    let blockedLocation = false;
    for (const r of sku.restrictions ?? []) {
      if (r.type === 'Location' && (r.values ?? []).some((v) => v.toLowerCase() === location))
        blockedLocation = true;
      if (r.type === 'Zone') blockedZones = new Set([...blockedZones, ...(r.restrictionInfo?.zones ?? [])]);
    }
    const open = blockedLocation ? [] : zones.length === 0 ? [''] : zones.filter((z) => !blockedZones.has(z));
    out.set(sku.name.toLowerCase(), { zones, open });
  }
  return out;
}
