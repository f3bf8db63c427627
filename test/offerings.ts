import { usdToMicros } from '../lib/money.ts';
import type { CapacityType, Offering } from '../providers/catalog/offering.ts';

/** A hand-made offering for small, readable solver cases. */
export function offering(
  vendor: string,
  region: string,
  gpu: string,
  gpusPerInstance: number,
  usdPerHour: number,
  capacityType: CapacityType = 'on-demand',
  regionGroup = 'us',
): Offering {
  const instanceType = `${gpu.toLowerCase()}-${gpusPerInstance}x`;
  return {
    id: `${vendor}/${region}/${instanceType}/${capacityType}`,
    vendor,
    region,
    regionGroup,
    instanceType,
    gpu,
    gpusPerInstance,
    gpuMemoryGiB: 80,
    vcpus: 8 * gpusPerInstance,
    memoryGiB: 64 * gpusPerInstance,
    capacityType,
    microsPerHour: usdToMicros(usdPerHour),
  };
}
