/**
 * GCP offering prices from Compute Engine's billing SKUs (Cloud Billing Catalog API, service 6F81-5844-456A). GCE
 * bills a GPU VM by its parts, so an offering's hourly price is
 *
 *   vCPUs × the family's core SKU + memory GiB × its RAM SKU + GPUs × the GPU's SKU
 *
 * all read for the offering's region, with the `OnDemand` SKUs for on-demand and the `Preemptible` ones for spot.
 * SKUs are recognised by their description (the API has no machine-type field), as SkyPilot's and Cyclenerd's
 * price calculators do: after an optional "Spot Preemptible " it starts with the phrase below, followed by
 * " running in" or " attached to". Where a region has several matching SKUs, the one sold in the fewest regions wins;
 * if those disagree, or a part is missing, the offering gets no price (and keeps its catalog price).
 * https://cloud.google.com/billing/docs/reference/rest/v1/services.skus/list
 * https://github.com/skypilot-org/skypilot/blob/master/sky/catalog/data_fetchers/fetch_gcp.py
 * https://github.com/Cyclenerd/google-cloud-pricing-cost-calculator/blob/master/build/mapping.csv
 */
import type { protos } from '@google-cloud/billing';
import { type Micros, micros } from '../../lib/money.ts';
import type { Offering } from '../catalog/offering.ts';

type ISku = protos.google.cloud.billing.v1.ISku;

/** Compute Engine's service id in the billing catalog. */
export const COMPUTE_ENGINE_SERVICE = 'services/6F81-5844-456A';

/** Per machine family (the start of the machine type): the SKUs of its vCPUs and memory. */
const HOSTS: ReadonlyArray<{ readonly family: string; readonly core?: string; readonly ram?: string }> = [
  { family: 'n1-', core: 'N1 Predefined Instance Core', ram: 'N1 Predefined Instance Ram' },
  { family: 'a2-', core: 'A2 Instance Core', ram: 'A2 Instance Ram' },
  { family: 'a3-highgpu-', core: 'A3 Instance Core', ram: 'A3 Instance Ram' },
  { family: 'a3-megagpu-', core: 'A3Plus Instance Core', ram: 'A3Plus Instance Ram' },
  { family: 'a3-ultragpu-', core: 'A3Ultra Instance Core', ram: 'A3Ultra Instance Ram' },
  { family: 'g2-', core: 'G2 Instance Core', ram: 'G2 Instance Ram' },
  // A4 VMs are billed through their GPUs alone: the B200 SKU covers a slice of the whole machine.
  { family: 'a4-highgpu-' },
];

/** Per GPU (the catalog's name; `family` where one GPU is sold under two SKUs): its SKU descriptions. */
const GPUS: ReadonlyArray<{
  readonly gpu: string;
  readonly family?: string;
  readonly skus: readonly string[];
}> = [
  { gpu: 'T4', skus: ['Nvidia Tesla T4 GPU'] },
  { gpu: 'V100', skus: ['Nvidia Tesla V100 GPU'] },
  { gpu: 'P100', skus: ['Nvidia Tesla P100 GPU'] },
  { gpu: 'P4', skus: ['Nvidia Tesla P4 GPU'] },
  { gpu: 'A100-40GB', skus: ['Nvidia Tesla A100 GPU'] },
  { gpu: 'A100-80GB', skus: ['Nvidia Tesla A100 80GB GPU'] },
  { gpu: 'L4', skus: ['Nvidia L4 GPU'] },
  { gpu: 'H100', family: 'a3-megagpu-', skus: ['Nvidia H100 80GB Mega GPU', 'Nvidia H100 80GB Plus GPU'] },
  { gpu: 'H100', skus: ['Nvidia H100 80GB GPU'] },
  { gpu: 'H200', skus: ['Nvidia H200 141GB GPU', 'H200 141GB GPU'] },
  { gpu: 'B200', skus: ['Nvidia B200 (1 gpu slice)'] },
];

/** SKUs for other ways of buying the same part (reservations, calendar and flex-start modes, sole tenancy). */
const OTHER_MODES = /\b(dws|flex|calendar|reserved|reservation|commitment|sole tenancy|custom|premium)\b/i;

/** The unit each part is priced in. */
const UNITS = { core: 'h', ram: 'GiBy.h', gpu: 'h' } as const;

type UsageType = 'OnDemand' | 'Preemptible';

/** One SKU's hourly price in nano-USD, with where it is sold. */
interface Rate {
  readonly description: string;
  readonly regions: readonly string[];
  readonly nanos: bigint;
}

/**
 * The hourly price of each offering the SKUs fully price, by offering id. Offerings of unknown families or GPUs, or
 * with a part missing or ambiguous in their region, are left out.
 */
export function pricesFromSkus(skus: readonly ISku[], offerings: readonly Offering[]): Map<string, Micros> {
  const rates = new Map<UsageType, { unit: string; rate: Rate }[]>([
    ['OnDemand', []],
    ['Preemptible', []],
  ]);
  for (const sku of skus) {
    const usage = sku.category?.usageType;
    if (usage !== 'OnDemand' && usage !== 'Preemptible') continue;
    const description = normalized(sku.description ?? '');
    const info = sku.pricingInfo?.at(-1)?.pricingExpression;
    const tier = info?.tieredRates?.find((t) => !t.startUsageAmount);
    const nanos = tier?.unitPrice ? nanosOf(tier.unitPrice) : undefined;
    if (!info?.usageUnit || nanos === undefined || OTHER_MODES.test(description)) continue;
    if ((tier?.unitPrice?.currencyCode ?? 'USD') !== 'USD') continue;
    rates
      .get(usage)
      ?.push({ unit: info.usageUnit, rate: { description, regions: sku.serviceRegions ?? [], nanos } });
  }

  const prices = new Map<string, Micros>();
  for (const o of offerings) {
    const host = HOSTS.find((h) => o.instanceType.startsWith(h.family));
    const gpu = GPUS.find((g) => g.gpu === o.gpu && (!g.family || o.instanceType.startsWith(g.family)));
    if (!host || !gpu || o.capacityType === 'reserved') continue;
    const usable = rates.get(o.capacityType === 'spot' ? 'Preemptible' : 'OnDemand') ?? [];
    const find = (unit: string, phrases: readonly string[]) =>
      rateIn(
        o.region,
        usable.filter((r) => r.unit === unit).map((r) => r.rate),
        phrases,
      );
    const gpuRate = find(UNITS.gpu, gpu.skus);
    const coreRate = host.core ? find(UNITS.core, [host.core]) : 0n;
    const ramRate = host.ram ? find(UNITS.ram, [host.ram]) : 0n;
    if (gpuRate === undefined || coreRate === undefined || ramRate === undefined) continue;
    // In thousandths of a nano-USD, so that fractional vCPU and GiB counts stay exact.
    const total =
      thousandths(o.vcpus) * coreRate +
      thousandths(o.memoryGiB) * ramRate +
      thousandths(o.gpusPerInstance) * gpuRate;
    prices.set(o.id, micros(Number((total + 500_000n) / 1_000_000n)));
  }
  return prices;
}

/** The rate of the SKU matching one of `phrases` in `region`: the most regional one, if its price is unambiguous. */
function rateIn(region: string, rates: readonly Rate[], phrases: readonly string[]): bigint | undefined {
  const matching = rates.filter(
    (r) => r.regions.includes(region) && phrases.some((p) => describes(r.description, p)),
  );
  const fewest = Math.min(...matching.map((r) => r.regions.length));
  const narrowest = new Set(matching.filter((r) => r.regions.length === fewest).map((r) => r.nanos));
  return narrowest.size === 1 ? [...narrowest][0] : undefined;
}

function describes(description: string, phrase: string): boolean {
  if (!description.startsWith(phrase)) return false;
  const rest = description.slice(phrase.length);
  return rest.startsWith(' running in') || rest.startsWith(' attached to');
}

/** The description without the spot prefix ("Spot Preemptible Nvidia L4 GPU running in Americas"). */
function normalized(description: string): string {
  return description.trim().replace(/^(Spot )?Preemptible /, '');
}

/** google.type.Money as nano-USD: `units` (an int64, often a string) and `nanos` of the same sign. */
function nanosOf(money: protos.google.type.IMoney): bigint | undefined {
  try {
    const units = BigInt(String(money.units ?? 0));
    const nanos = BigInt(money.nanos ?? 0);
    const total = units * 1_000_000_000n + nanos;
    return total >= 0n ? total : undefined;
  } catch {
    return undefined;
  }
}

function thousandths(count: number): bigint {
  return BigInt(Math.round(count * 1_000));
}
