/**
 * What a simulated multi-cloud looks like: stock, delays, quotas, throttling, spot replay, outages and price
 * changes. Every field has a documented default, so `{}` is the embedded default and a test or simulation states
 * only what it changes (tight stock, high preemption, an outage). Times in a scenario are ms after the clouds start.
 */
import { readFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { DataFileError, validationErrorFromIssues } from '../../lib/errors.ts';
import { importModule } from '../../lib/import-module.ts';
import { parseJsonInput } from '../../lib/json-input.ts';
import { CAPACITY_TYPES } from '../catalog/offering.ts';

const ms = z
  .number()
  .int()
  .min(0)
  .max(10 * 365 * 86_400_000);

/** A delay distribution in ms. `lognormal` is the usual shape of boot times: a median and a long right tail. */
export const delaySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('fixed'), ms }).strict(),
  z
    .object({ kind: z.literal('uniform'), minMs: ms, maxMs: ms })
    .strict()
    .refine((d) => d.minMs <= d.maxMs, { message: 'minMs must not exceed maxMs', path: ['maxMs'] }),
  z
    .object({
      kind: z.literal('lognormal'),
      medianMs: ms,
      sigma: z.number().min(0).max(3),
      maxMs: ms.optional(),
    })
    .strict(),
]);
export type Delay = z.infer<typeof delaySchema>;

/** Selects offerings (and zones); every given field must match, an empty match selects everything. */
export const matchSchema = z
  .object({
    vendor: z.string().optional(),
    region: z.string().optional(),
    zone: z.string().optional(),
    gpu: z.string().optional(),
    instanceType: z.string().optional(),
    capacityType: z.enum(CAPACITY_TYPES).optional(),
    offeringId: z.string().optional(),
  })
  .strict();
export type Match = z.infer<typeof matchSchema>;

const quotaSchema = z
  .object({
    /** Applies to this region only; without it the rule applies to each region separately (as cloud quotas do). */
    region: z.string().optional(),
    gpu: z.string().optional(),
    capacityType: z.enum(CAPACITY_TYPES).optional(),
    maxGpus: z.number().int().min(0),
  })
  .strict();

const minutes = (a: number, b: number): Delay => ({ kind: 'uniform', minMs: a * 60_000, maxMs: b * 60_000 });
const seconds = (a: number, b: number): Delay => ({ kind: 'uniform', minMs: a * 1000, maxMs: b * 1000 });

/** Per-vendor behaviour. Defaults per vendor are in VENDOR_DEFAULTS; a scenario overrides field by field. */
export const vendorSettingsSchema = z
  .object({
    provisioningDelay: z
      .object({ 'on-demand': delaySchema, spot: delaySchema, reserved: delaySchema })
      .partial()
      .strict()
      .optional(),
    terminationDelay: delaySchema.optional(),
    /** Warning between an interruption notice and the reclaim (AWS: 2 minutes; GCP, Azure: 30 s). */
    interruptionWarningMs: ms.optional(),
    zonesPerRegion: z.number().int().min(1).max(6).optional(),
    /** Share of launches that never boot: the instance goes from pending to terminated with a failure event. */
    bootFailureRate: z.number().min(0).max(1).optional(),
    /** Token bucket over all API calls; null turns throttling off. */
    throttle: z
      .object({ burst: z.number().int().min(1), perSecond: z.number().positive() })
      .strict()
      .nullable()
      .optional(),
    /** The retry-after an InsufficientCapacityError carries. */
    capacityRetryAfterMs: ms.optional(),
    quotas: z.array(quotaSchema).optional(),
    /** How long terminated instances stay visible in `list({ includeTerminated: true })`. */
    terminatedRetentionMs: ms.optional(),
  })
  .strict();
export type VendorSettingsInput = z.infer<typeof vendorSettingsSchema>;

export interface VendorSettings {
  provisioningDelay: Record<'on-demand' | 'spot' | 'reserved', Delay>;
  terminationDelay: Delay;
  interruptionWarningMs: number;
  zonesPerRegion: number;
  bootFailureRate: number;
  throttle: { burst: number; perSecond: number } | null;
  capacityRetryAfterMs: number;
  quotas: z.infer<typeof quotaSchema>[];
  terminatedRetentionMs: number;
}

const COMMON: Omit<VendorSettings, 'provisioningDelay' | 'terminationDelay' | 'interruptionWarningMs'> = {
  zonesPerRegion: 3,
  bootFailureRate: 0.002,
  throttle: { burst: 100, perSecond: 10 },
  capacityRetryAfterMs: 5 * 60_000,
  quotas: [
    { capacityType: 'on-demand', maxGpus: 512 },
    { capacityType: 'spot', maxGpus: 512 },
  ],
  terminatedRetentionMs: 60 * 60_000,
};

/**
 * Defaults per vendor. Boot times are those commonly reported for GPU VMs (AWS and GCP 1–4 minutes, Azure
 * slower); interruption warnings are the documented ones.
 */
export const VENDOR_DEFAULTS: Readonly<Record<string, VendorSettings>> = {
  aws: {
    ...COMMON,
    provisioningDelay: { 'on-demand': minutes(1, 4), spot: minutes(1, 5), reserved: minutes(1, 4) },
    terminationDelay: seconds(20, 90),
    interruptionWarningMs: 120_000,
  },
  gcp: {
    ...COMMON,
    provisioningDelay: { 'on-demand': minutes(0.75, 3), spot: minutes(0.75, 3), reserved: minutes(0.75, 3) },
    terminationDelay: seconds(10, 60),
    interruptionWarningMs: 30_000,
  },
  azure: {
    ...COMMON,
    provisioningDelay: { 'on-demand': minutes(1.5, 5), spot: minutes(1.5, 5), reserved: minutes(1.5, 5) },
    terminationDelay: seconds(30, 120),
    interruptionWarningMs: 30_000,
  },
};

const traceRef = z.string().min(1).nullable();

export const simScenarioSchema = z
  .object({
    /** Seeds every random choice: delays, boot failures, trace mapping and shifts, preemption victims, ids. */
    seed: z.union([z.number().int(), z.string().min(1)]).default(1),
    /** Only these vendors of the catalog are simulated (default: every vendor in it). */
    vendors: z.array(z.string().min(1)).optional(),
    settings: z.record(z.string(), vendorSettingsSchema).default({}),
    stock: z
      .object({
        /** On-demand instances of one offering obtainable per zone. */
        onDemandPerZone: z.number().int().min(0).default(16),
        /** Spot instances of one offering per zone when its availability trace is at its maximum. */
        spotPerZone: z.number().int().min(0).default(16),
        /** Overrides for the offerings (and zones) they match; the last matching rule wins. */
        rules: z
          .array(
            z
              .object({
                match: matchSchema,
                onDemandPerZone: z.number().int().min(0).optional(),
                spotPerZone: z.number().int().min(0).optional(),
              })
              .strict(),
          )
          .default([]),
      })
      .strict()
      .default({ onDemandPerZone: 16, spotPerZone: 16, rules: [] }),
    /** Reserved capacity bought in advance: adds a reserved offering next to the on-demand one it names. */
    reservations: z
      .array(
        z
          .object({
            offeringId: z.string().min(1),
            count: z.number().int().min(1),
            /** Effective hourly price; default 60 % of on-demand (a typical one-year commitment). */
            usdPerHour: z.number().min(0).optional(),
          })
          .strict(),
      )
      .default([]),
    spot: z
      .object({
        /** Replay the real spot traces (stock-outs and preemptions); false: spot is always there and never reclaimed. */
        replay: z.boolean().default(true),
        /** Explicit traces for the pools they match (first match wins); null turns that kind off for the pool. */
        pools: z
          .array(
            z
              .object({
                match: matchSchema,
                availability: traceRef.optional(),
                preemption: traceRef.optional(),
                /** Where in the trace the clouds' start falls, in ms from the trace's start; default seeded. */
                shiftMs: ms.optional(),
              })
              .strict(),
          )
          .default([]),
      })
      .strict()
      .default({ replay: true, pools: [] }),
    outages: z
      .array(
        z
          .object({
            vendor: z.string().min(1),
            region: z.string().optional(),
            zone: z.string().optional(),
            /** `api`: calls for the region (or the whole vendor) fail; `zone-failure`: its instances also die. */
            kind: z.enum(['api', 'zone-failure']).default('api'),
            startMs: ms,
            durationMs: ms.refine((d) => d > 0, 'must be positive'),
          })
          .strict()
          .refine((o) => o.zone === undefined || o.region !== undefined, {
            message: 'an outage of a zone names its region too',
            path: ['region'],
          }),
      )
      .default([]),
    /** Spot preemption storms: at `atMs`, every running spot instance in scope gets its interruption notice. */
    preemptionStorms: z
      .array(
        z
          .object({
            vendor: z.string().min(1),
            region: z.string().optional(),
            atMs: ms,
          })
          .strict(),
      )
      .default([]),
    priceChanges: z
      .array(
        z
          .object({
            atMs: ms,
            match: matchSchema,
            /** Multiplies the catalog price, or sets it. */
            factor: z.number().positive().max(100).optional(),
            usdPerHour: z.number().min(0).max(100_000).optional(),
          })
          .strict()
          .refine((p) => (p.factor === undefined) !== (p.usdPerHour === undefined), {
            message: 'give exactly one of factor and usdPerHour',
            path: ['factor'],
          }),
      )
      .default([]),
  })
  .strict();

export type SimScenario = z.infer<typeof simScenarioSchema>;
export type SimScenarioInput = z.input<typeof simScenarioSchema>;

/** Validates a scenario from code; throws ValidationError naming the field (`scenario.stock.rules.0.match`). */
export function simScenario(input: SimScenarioInput = {}): SimScenario {
  const parsed = simScenarioSchema.safeParse(input);
  if (!parsed.success) throw validationErrorFromIssues('scenario', parsed.error.issues);
  return parsed.data;
}

/** The settings of one vendor: its defaults (or AWS's for an unknown vendor) with the scenario's overrides. */
export function vendorSettings(scenario: SimScenario, vendor: string): VendorSettings {
  const base = VENDOR_DEFAULTS[vendor] ?? (VENDOR_DEFAULTS.aws as VendorSettings);
  const override = scenario.settings[vendor] ?? {};
  const defined = Object.fromEntries(Object.entries(override).filter(([, v]) => v !== undefined));
  return {
    ...base,
    ...defined,
    provisioningDelay: { ...base.provisioningDelay, ...(override.provisioningDelay ?? {}) },
  } as VendorSettings;
}

/** Reads a scenario from a `.json` file or a `.ts`/`.js`/`.mjs` module whose default export is the scenario. */
export async function loadSimScenario(file: string): Promise<SimScenario> {
  const path = resolve(file);
  let input: unknown;
  try {
    if (extname(path) === '.json') input = parseJsonInput(readFileSync(path, 'utf8'), path);
    else input = ((await importModule(pathToFileURL(path).href)) as { default?: unknown }).default;
  } catch (error) {
    throw new DataFileError(
      file,
      undefined,
      undefined,
      `cannot read the scenario: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const parsed = simScenarioSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DataFileError(file, undefined, issue?.path.join('.') || undefined, issue?.message ?? 'invalid');
  }
  return parsed.data;
}

/** Whether an offering (with a zone, when the rule names one) matches. */
export function matches(
  match: Match,
  o: { vendor: string; region: string; gpu: string; instanceType: string; capacityType: string; id: string },
  zone?: string,
): boolean {
  return (
    (match.vendor === undefined || match.vendor === o.vendor) &&
    (match.region === undefined || match.region === o.region) &&
    (match.zone === undefined || match.zone === zone) &&
    (match.gpu === undefined || match.gpu === o.gpu) &&
    (match.instanceType === undefined || match.instanceType === o.instanceType) &&
    (match.capacityType === undefined || match.capacityType === o.capacityType) &&
    (match.offeringId === undefined || match.offeringId === o.id)
  );
}

/** How fast instances boot in `serve`'s embedded default: seconds, so that a first run does not wait minutes. */
export const QUICK_BOOT = seconds(5, 15);

/**
 * The embedded default of `gpubroker serve` (no `--scenario`): the simulated clouds with every other default, but
 * instances that boot in 5–15 s and end in 2–8 s instead of minutes. Simulations and `--scenario realistic` keep
 * the realistic delays of VENDOR_DEFAULTS.
 */
export function quickStartScenario(): SimScenario {
  const fast: VendorSettingsInput = {
    provisioningDelay: { 'on-demand': QUICK_BOOT, spot: QUICK_BOOT, reserved: QUICK_BOOT },
    terminationDelay: seconds(2, 8),
  };
  return simScenario({ settings: Object.fromEntries(Object.keys(VENDOR_DEFAULTS).map((v) => [v, fast])) });
}
