/**
 * Which zones of a region can run an offering: the zones whose accelerator types include the offering's GPU, as
 * Compute Engine lists them. Zones change rarely, so the answer is kept for a while; stock-outs change often, so
 * a zone that just reported one is set aside for `retryAfterMs` (what GCE says about capacity is learned only by
 * asking for it).
 */
import type { Clock } from '../../lib/clock.ts';
import type { Offering } from '../catalog/offering.ts';
import type { GceApi } from './gce-api.ts';
import { machineSpecOf } from './machine-spec.ts';

export class ZoneDirectory {
  private zones: Map<string, Set<string>> | undefined;
  private fetchedAtMs = 0;
  private pending: Promise<Map<string, Set<string>>> | undefined;
  /** `offeringId@zone` → when its last stock-out stops counting. */
  private readonly stockouts = new Map<string, number>();

  constructor(
    private readonly api: GceApi,
    private readonly clock: Clock,
    private readonly ttlMs: number,
  ) {}

  /** Every zone of `region` GCE lists, sorted. */
  async zonesOf(region: string): Promise<string[]> {
    const zones = await this.load();
    return [...zones.keys()].filter((z) => regionOf(z) === region).sort();
  }

  /** Zones of the offering's region that offer its GPU, sorted; ones in a recent stock-out last when `all`. */
  async zonesFor(offering: Offering, options: { all?: boolean } = {}): Promise<string[]> {
    const zones = await this.load();
    const accelerator = machineSpecOf(offering).acceleratorType;
    const offered = [...zones.entries()]
      .filter(
        ([zone, types]) => regionOf(zone) === offering.region && (!accelerator || types.has(accelerator)),
      )
      .map(([zone]) => zone)
      .sort();
    const now = this.clock.now();
    const open = offered.filter((z) => (this.stockouts.get(`${offering.id}@${z}`) ?? 0) <= now);
    return options.all ? [...open, ...offered.filter((z) => !open.includes(z))] : open;
  }

  recordStockout(offering: Offering, zone: string, retryAfterMs: number): void {
    this.stockouts.set(`${offering.id}@${zone}`, this.clock.now() + retryAfterMs);
  }

  /** Forgets a stock-out once the zone delivered. */
  recordSuccess(offering: Offering, zone: string): void {
    this.stockouts.delete(`${offering.id}@${zone}`);
  }

  private async load(): Promise<Map<string, Set<string>>> {
    if (this.zones && this.clock.now() - this.fetchedAtMs < this.ttlMs) return this.zones;
    this.pending ??= this.api.acceleratorZones().finally(() => {
      this.pending = undefined;
    });
    const zones = await this.pending;
    this.zones = zones;
    this.fetchedAtMs = this.clock.now();
    return zones;
  }
}

/** `us-central1-a` → `us-central1` (a zone is its region plus one last `-suffix`). */
export function regionOf(zone: string): string {
  const dash = zone.lastIndexOf('-');
  return dash > 0 ? zone.slice(0, dash) : zone;
}
