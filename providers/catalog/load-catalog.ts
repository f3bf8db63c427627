import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { DataFileError } from '../../lib/errors.ts';
import { type Micros, parseUsd } from '../../lib/money.ts';
import { type CapacityType, type Offering, offeringId } from './offering.ts';
import { type RegionGroupOverrides, regionGroupOf } from './region-groups.ts';

/** The catalog shipped with gpubroker: real AWS, GCP and Azure GPU prices (see README.md beside it). */
export const BUNDLED_CATALOG_PATH = fileURLToPath(new URL('./gpu-offerings.csv', import.meta.url));

const COLUMNS = [
  'vendor',
  'region',
  'zone',
  'instance_type',
  'gpu',
  'gpu_count',
  'gpu_memory_gib',
  'vcpus',
  'memory_gib',
  'on_demand_usd_per_hour',
  'spot_usd_per_hour',
] as const;
type Column = (typeof COLUMNS)[number];

export interface LoadCatalogOptions {
  /** Region → group overrides (policy); keys `vendor/region` or `region`. */
  regionGroups?: RegionGroupOverrides;
}

/** Loads a catalog CSV file into offerings. Throws DataFileError naming the file, line and field of a bad row. */
export function loadCatalog(
  path: string = BUNDLED_CATALOG_PATH,
  options: LoadCatalogOptions = {},
): Offering[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new DataFileError(
      path,
      undefined,
      undefined,
      `cannot read the catalog: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  return parseCatalog(text, path, options);
}

/**
 * Parses catalog CSV text: one offering per (vendor, region, instance type, capacity type). Every row gives an
 * on-demand offering when it has an on-demand price, and a spot offering when it has a spot price.
 */
export function parseCatalog(text: string, file: string, options: LoadCatalogOptions = {}): Offering[] {
  let rows: { record: Record<string, string>; info: { lines: number } }[];
  try {
    rows = parse(text, { columns: true, info: true, skip_empty_lines: true, trim: true });
  } catch (error) {
    const line = (error as { lines?: number }).lines;
    throw new DataFileError(file, line, undefined, `malformed CSV: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const header =
    text
      .split(/\r?\n/, 1)[0]
      ?.split(',')
      .map((h) => h.trim()) ?? [];
  const missing = COLUMNS.filter((column) => !header.includes(column));
  if (missing.length > 0)
    throw new DataFileError(file, 1, missing[0], `missing column(s): ${missing.join(', ')}`);

  const offerings: Offering[] = [];
  const seen = new Set<string>();
  for (const { record, info } of rows) {
    const line = info.lines;
    const field = (column: Column): string => record[column] ?? '';
    const fail = (column: Column, message: string): never => {
      throw new DataFileError(file, line, column, `${message} (got "${field(column)}")`);
    };
    const text = (column: Column): string => field(column) || fail(column, 'must not be empty');
    const positiveInteger = (column: Column): number => {
      const value = Number(field(column));
      return Number.isSafeInteger(value) && value > 0 ? value : fail(column, 'must be a positive integer');
    };
    const positiveNumber = (column: Column): number => {
      const value = Number(field(column));
      return field(column) !== '' && Number.isFinite(value) && value > 0
        ? value
        : fail(column, 'must be a positive number');
    };
    const price = (column: Column): Micros | undefined => {
      if (field(column) === '') return undefined;
      try {
        const amount = parseUsd(field(column));
        return amount > 0 ? amount : fail(column, 'must be a positive USD price');
      } catch (error) {
        if (error instanceof DataFileError) throw error;
        return fail(column, (error as Error).message);
      }
    };

    const vendor = text('vendor');
    if (!/^[a-z][a-z0-9-]*$/.test(vendor)) fail('vendor', 'must be a lower-case vendor name');
    const region = text('region');
    const instanceType = text('instance_type');
    const gpu = text('gpu');
    const gpusPerInstance = positiveInteger('gpu_count');
    const gpuMemoryGiB = positiveNumber('gpu_memory_gib');
    const vcpus = positiveNumber('vcpus');
    const memoryGiB = positiveNumber('memory_gib');
    const onDemand = price('on_demand_usd_per_hour');
    const spot = price('spot_usd_per_hour');
    if (onDemand === undefined && spot === undefined)
      fail('on_demand_usd_per_hour', 'a row needs an on-demand or a spot price');
    const regionGroup =
      regionGroupOf(vendor, region, options.regionGroups) ??
      fail('region', 'unknown region group; add an override');
    const zone = field('zone') || undefined;

    const add = (capacityType: CapacityType, microsPerHour: Micros) => {
      const id = offeringId(vendor, region, instanceType, capacityType);
      if (seen.has(id)) fail('instance_type', `duplicate offering ${id}`);
      seen.add(id);
      offerings.push({
        id,
        vendor,
        region,
        ...(zone ? { zone } : {}),
        regionGroup,
        instanceType,
        gpu,
        gpusPerInstance,
        gpuMemoryGiB,
        vcpus,
        memoryGiB,
        capacityType,
        microsPerHour,
      });
    };
    if (onDemand !== undefined) add('on-demand', onDemand);
    if (spot !== undefined) add('spot', spot);
  }
  if (offerings.length === 0)
    throw new DataFileError(file, undefined, undefined, 'the catalog has no offerings');
  return offerings;
}
