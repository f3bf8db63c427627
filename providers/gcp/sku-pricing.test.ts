import type { protos } from '@google-cloud/billing';
import { describe, expect, it } from 'vitest';
import { micros } from '../../lib/money.ts';
import { type CapacityType, type Offering, offeringId } from '../catalog/offering.ts';
import { pricesFromSkus } from './sku-pricing.ts';

type ISku = protos.google.cloud.billing.v1.ISku;

function offering(
  instanceType: string,
  gpu: string,
  gpus: number,
  vcpus: number,
  memoryGiB: number,
  capacityType: CapacityType = 'on-demand',
): Offering {
  return {
    id: offeringId('gcp', 'us-central1', instanceType, capacityType),
    vendor: 'gcp',
    region: 'us-central1',
    regionGroup: 'us',
    instanceType,
    gpu,
    gpusPerInstance: gpus,
    gpuMemoryGiB: 80,
    vcpus,
    memoryGiB,
    capacityType,
    microsPerHour: micros(1),
  };
}

/** A SKU as the REST API answers it: `units` an int64 string, `nanos` the fraction. */
function sku(
  description: string,
  usd: string,
  options: { usage?: string; unit?: string; regions?: string[]; currency?: string } = {},
): ISku {
  const [units = '0', fraction = ''] = usd.split('.');
  return {
    description,
    category: { resourceFamily: 'Compute', usageType: options.usage ?? 'OnDemand' },
    serviceRegions: options.regions ?? ['us-central1', 'us-east1'],
    pricingInfo: [
      {
        pricingExpression: {
          usageUnit: options.unit ?? 'h',
          tieredRates: [
            {
              startUsageAmount: 0,
              unitPrice: {
                currencyCode: options.currency ?? 'USD',
                units,
                nanos: Number(fraction.padEnd(9, '0')),
              },
            },
          ],
        },
      },
    ],
  };
}

describe('GCP prices from billing SKUs', () => {
  const h100 = offering('a3-highgpu-8g', 'H100', 8, 208, 1872);
  const mega = offering('a3-megagpu-8g', 'H100', 8, 208, 1872);
  const A3 = [
    sku('A3 Instance Core running in Americas', '0.1'),
    sku('A3 Instance Ram running in Americas', '0.01', { unit: 'GiBy.h' }),
    sku('Nvidia H100 80GB GPU running in Americas', '10'),
    sku('A3Plus Instance Core running in Americas', '0.2'),
    sku('A3Plus Instance Ram running in Americas', '0.02', { unit: 'GiBy.h' }),
    sku('Nvidia H100 80GB Mega GPU running in Americas', '11'),
  ];

  it('adds up cores, memory and GPUs, with the SKUs of the machine family', () => {
    const prices = pricesFromSkus(A3, [h100, mega]);
    // 208 × 0.1 + 1872 × 0.01 + 8 × 10 and 208 × 0.2 + 1872 × 0.02 + 8 × 11.
    expect(prices.get(h100.id)).toBe(119_520_000);
    expect(prices.get(mega.id)).toBe(167_040_000);
  });

  it('prices spot offerings from the Preemptible SKUs, with or without the "Spot Preemptible" prefix', () => {
    const spot = offering('g2-standard-4', 'L4', 1, 4, 16, 'spot');
    const prices = pricesFromSkus(
      [
        sku('Spot Preemptible G2 Instance Core running in Americas', '0.009995', { usage: 'Preemptible' }),
        sku('Spot Preemptible G2 Instance Ram running in Americas', '0.001171', {
          usage: 'Preemptible',
          unit: 'GiBy.h',
        }),
        sku('Nvidia L4 GPU attached to Spot Preemptible VMs running in Americas', '0.224', {
          usage: 'Preemptible',
        }),
        // On-demand SKUs do not price spot offerings.
        sku('Nvidia L4 GPU running in Americas', '0.56004'),
      ],
      [spot],
    );
    expect(prices.get(spot.id)).toBe(282_716);
  });

  it('is exact to the micro for fractional memory and nano prices, rounding once at the end', () => {
    const small = offering('n1-standard-1+1xT4', 'T4', 1, 1, 3.75);
    const prices = pricesFromSkus(
      [
        sku('N1 Predefined Instance Core running in Americas', '0.031611'),
        sku('N1 Predefined Instance Ram running in Americas', '0.004237', { unit: 'GiBy.h' }),
        sku('Nvidia Tesla T4 GPU running in Americas', '0.350000123'),
      ],
      [small],
    );
    // 0.031611 + 3.75 × 0.004237 + 0.350000123 = 0.397499873… → 0.397500.
    expect(prices.get(small.id)).toBe(397_500);
  });

  it('prices A4 VMs by their GPU SKU alone', () => {
    const b200 = offering('a4-highgpu-8g', 'B200', 8, 224, 3968);
    const prices = pricesFromSkus([sku('Nvidia B200 (1 gpu slice) running in Americas', '11.277')], [b200]);
    expect(prices.get(b200.id)).toBe(90_216_000);
  });

  it('leaves out offerings with a part missing, in another region, in another currency or ambiguous', () => {
    const missingRam = pricesFromSkus([A3[0] as ISku, A3[2] as ISku], [h100]);
    expect(missingRam.has(h100.id)).toBe(false);
    const elsewhere = pricesFromSkus(
      A3.map((s) => ({ ...s, serviceRegions: ['europe-west4'] })),
      [h100],
    );
    expect(elsewhere.has(h100.id)).toBe(false);
    const yen = pricesFromSkus(
      [...A3.slice(0, 2), sku('Nvidia H100 80GB GPU running in Americas', '1500', { currency: 'JPY' })],
      [h100],
    );
    expect(yen.has(h100.id)).toBe(false);
    const ambiguous = pricesFromSkus(
      // As regional as the Americas SKU, at another price.
      [...A3, sku('Nvidia H100 80GB GPU running in the US', '9', { regions: ['us-east1', 'us-central1'] })],
      [h100],
    );
    expect(ambiguous.has(h100.id)).toBe(false);
  });

  it('prefers the SKU sold in the fewest regions, and ignores other buying modes and commitments', () => {
    const prices = pricesFromSkus(
      [
        ...A3.slice(0, 2),
        sku('Nvidia H100 80GB GPU running in Americas', '10', {
          regions: ['us-central1', 'us-east1', 'us-west1'],
        }),
        sku('Nvidia H100 80GB GPU running in Iowa', '9', { regions: ['us-central1'] }),
        sku('DWS Defined Duration Nvidia H100 80GB GPU running in Americas', '5'),
        sku('Nvidia H100 80GB GPU running in Americas (Reserved)', '4', { regions: ['us-central1'] }),
        sku('Commitment v1: Nvidia H100 80GB GPU in Americas for 1 Year', '6', { usage: 'Commit1Yr' }),
      ],
      [h100],
    );
    // 208 × 0.1 + 1872 × 0.01 + 8 × 9.
    expect(prices.get(h100.id)).toBe(111_520_000);
  });
});
