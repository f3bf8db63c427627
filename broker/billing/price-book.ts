/**
 * The price book: what tenants pay, in integer micro-USD per GPU-second (and optionally per core-second and per
 * GiB-second). By default a GPU type costs the catalog's median on-demand price per GPU plus a markup; the operator
 * may set any rate, region multipliers and a multiplier for non-preemptible (on-demand or reserved) capacity.
 * Versioned like policies: each change is a new version with who, when and the diff.
 */
import { z } from 'zod';
import type { Clock } from '../../lib/clock.ts';
import { validationErrorFromIssues } from '../../lib/errors.ts';
import { perSecondRateRoundedUp } from '../../lib/money.ts';
import type { Offering } from '../../providers/catalog/offering.ts';
import type { Database } from '../db/open-database.ts';
import { priceBooks } from '../db/schema.ts';
import { type Version, VersionedStore } from '../versioned-store.ts';

const multiplier = z.number().min(0).max(100);

export const priceBookSchema = z
  .object({
    /** Over the catalog's cost, for GPU types without an explicit rate: 0.2 is +20 %. */
    markup: z.number().min(0).max(100).default(0.2),
    /** Explicit micro-USD per GPU-second by GPU type (e.g. `{ "H100": 3500 }`). */
    gpuMicrosPerSecond: z.record(z.string().min(1), z.number().int().min(0).max(1e9)).default({}),
    coreMicrosPerSecond: z.number().int().min(0).max(1e9).default(0),
    gibMicrosPerSecond: z.number().int().min(0).max(1e9).default(0),
    /** Per region (e.g. `{ "eu-west-1": 1.1 }`); 1 when absent. */
    regionMultipliers: z.record(z.string().min(1), multiplier).default({}),
    /** For non-preemptible capacity (on-demand, reserved); spot is billed at 1×. */
    onDemandMultiplier: multiplier.default(1),
  })
  .strict();

export type PriceBook = z.infer<typeof priceBookSchema>;

/** Validates a price book (ValidationError naming the field, under `priceBook.`). */
export function priceBook(input: unknown = {}): PriceBook {
  const parsed = priceBookSchema.safeParse(input);
  if (!parsed.success) throw validationErrorFromIssues('priceBook', parsed.error.issues);
  return parsed.data;
}

export type PriceBookVersion = Version<'book', PriceBook>;

/** What an interval's attributes price at. */
export interface RateKey {
  readonly gpu: string;
  readonly region: string;
  readonly capacityType: string;
}

/** Prices usage with one price book version and the offerings' list prices. */
export class Rates {
  private readonly base = new Map<string, number>();

  constructor(
    readonly version: PriceBookVersion,
    offerings: readonly Offering[],
  ) {
    const perGpu = new Map<string, number[]>();
    for (const o of offerings)
      if (o.capacityType === 'on-demand') {
        const list = perGpu.get(o.gpu) ?? [];
        list.push(o.microsPerHour / o.gpusPerInstance);
        perGpu.set(o.gpu, list);
      }
    for (const [gpu, prices] of perGpu) {
      prices.sort((a, b) => a - b);
      const median = prices[Math.floor((prices.length - 1) / 2)] as number;
      this.base.set(gpu, perSecondRateRoundedUp(median * (1 + version.book.markup)));
    }
  }

  /** Micro-USD per GPU-second for this GPU type before multipliers (0 for a type no offering sells). */
  gpuRate(gpu: string): number {
    return this.version.book.gpuMicrosPerSecond[gpu] ?? this.base.get(gpu) ?? 0;
  }

  /** Micro-USD per GPU-second with the region and capacity multipliers, rounded to an integer. */
  rateFor(key: RateKey): number {
    const book = this.version.book;
    const region = book.regionMultipliers[key.region] ?? 1;
    const capacity = key.capacityType === 'spot' ? 1 : book.onDemandMultiplier;
    return Math.round(this.gpuRate(key.gpu) * region * capacity);
  }

  get coreRate(): number {
    return this.version.book.coreMicrosPerSecond;
  }

  get gibRate(): number {
    return this.version.book.gibMicrosPerSecond;
  }
}

/** The price book's versions (see broker/versioned-store.ts). */
export class PriceBookStore extends VersionedStore<'book', PriceBook> {
  constructor(db: Database, clock: Clock) {
    super(db, clock, { table: priceBooks, field: 'book', parse: priceBook });
  }
}
