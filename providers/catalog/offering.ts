import type { Micros } from '../../lib/money.ts';

export const VENDORS = ['aws', 'gcp', 'azure'] as const;
export type Vendor = (typeof VENDORS)[number] | (string & {});

export const CAPACITY_TYPES = ['on-demand', 'spot', 'reserved'] as const;
export type CapacityType = (typeof CAPACITY_TYPES)[number];

/** One purchasable unit: vendor × region × instance type × capacity type, with its hourly price. */
export interface Offering {
  /** `vendor/region/instanceType/capacityType`, unique in a catalog. */
  readonly id: string;
  readonly vendor: Vendor;
  readonly region: string;
  readonly zone?: string;
  /** Region group (`us`, `eu`, `asia`, …) the region belongs to; demand is stated per group. */
  readonly regionGroup: string;
  readonly instanceType: string;
  readonly gpu: string;
  readonly gpusPerInstance: number;
  readonly gpuMemoryGiB: number;
  readonly vcpus: number;
  readonly memoryGiB: number;
  readonly capacityType: CapacityType;
  /** Price per instance-hour in micro-USD. */
  readonly microsPerHour: Micros;
}

export function offeringId(
  vendor: string,
  region: string,
  instanceType: string,
  capacityType: CapacityType,
): string {
  return `${vendor}/${region}/${instanceType}/${capacityType}`;
}

/** The reserved twin of an on-demand offering: same instance, capacity paid in advance. */
export function reservedTwin(o: Offering): Offering {
  return { ...o, id: offeringId(o.vendor, o.region, o.instanceType, 'reserved'), capacityType: 'reserved' };
}
