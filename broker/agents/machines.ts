/**
 * Machines of your own (`--providers machines`): capacity that joins by running `gpubroker agent` without an
 * instance id. Each joined machine is an instance of the fleet (vendor `machines`, id `machines/<agent id>`),
 * running for as long as its agent is registered, so leases and containers are placed on it like on any instance;
 * but it is held outside the plan: the loop counts its GPUs as capacity already there (demand it covers is not
 * bought) and never launches or terminates one. Revoking its agent removes it.
 *
 * A machine has one GPU type (the one most of its GPUs are); its region group is its `region` label (default:
 * the policy's default group); its price (`--usd-per-hour`) is what its usage costs in reports.
 */
import type { Logger } from 'pino';
import type { Hello } from '../../agent/protocol.ts';
import type { Clock } from '../../lib/clock.ts';
import { type Micros, usdToMicros } from '../../lib/money.ts';
import type { Offering } from '../../providers/catalog/offering.ts';
import type { Fleet, LiveInstance } from '../fleet.ts';

export const MACHINES_VENDOR = 'machines';

export function isMachine(instance: { readonly vendor: string }): boolean {
  return instance.vendor === MACHINES_VENDOR;
}

export interface MachinesOptions {
  readonly fleet: Fleet;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly defaultRegionGroup: () => string;
}

export class Machines {
  constructor(private readonly o: MachinesOptions) {}

  /** Records (or confirms) the machine an agent without an instance id runs on; throws when it has no GPU. */
  async joined(instanceId: string, agentId: string, hello: Hello): Promise<LiveInstance> {
    const counts = new Map<string, number>();
    for (const g of hello.gpus) counts.set(g.name, (counts.get(g.name) ?? 0) + 1);
    const [gpu, gpus] = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0] ?? [];
    if (!gpu || !gpus) throw new Error('a machine of your own needs at least one GPU');
    const regionGroup = hello.labels.region ?? this.o.defaultRegionGroup();
    const known = this.o.fleet.get(instanceId);
    if (known && known.gpu === gpu && known.gpusPerInstance === gpus && known.region === regionGroup)
      return known;
    const now = this.o.clock.now();
    this.o.logger.info({ instanceId, gpu, gpus, regionGroup }, 'machine joined');
    return this.o.fleet.record({
      id: instanceId,
      vendor: MACHINES_VENDOR,
      offeringId: `${MACHINES_VENDOR}/${regionGroup}/${gpus}x${gpu}`,
      region: regionGroup,
      zone: hello.hostname.slice(0, 100),
      instanceType: `${gpus}x${gpu}`,
      capacityType: 'reserved',
      gpu,
      gpusPerInstance: gpus,
      state: 'running',
      tags: {},
      idempotencyKey: `machine-${agentId}`,
      microsPerHour: usdToMicros(hello.usdPerHour ?? 0),
      launchedAtMs: known?.launchedAt ?? now,
      runningAtMs: now,
    });
  }

  /** Each joined machine as an offering (its own), so that leases know what machines can serve. */
  offerings(): Offering[] {
    return this.o.fleet
      .all()
      .filter(isMachine)
      .map((m) => ({
        id: m.offeringId,
        vendor: MACHINES_VENDOR as Offering['vendor'],
        region: m.region,
        regionGroup: m.region,
        instanceType: m.instanceType,
        gpu: m.gpu,
        gpusPerInstance: m.gpusPerInstance,
        gpuMemoryGiB: 0,
        vcpus: 0,
        memoryGiB: 0,
        capacityType: m.capacityType,
        microsPerHour: m.microsPerHour as Micros,
      }));
  }

  /** The machine's agent was revoked: it leaves the fleet. */
  async removed(instanceId: string): Promise<void> {
    if (this.o.fleet.get(instanceId))
      await this.o.fleet.setState(instanceId, 'terminated', { reason: 'requested' });
  }
}
