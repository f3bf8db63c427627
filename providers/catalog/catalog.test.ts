import { describe, expect, it } from 'vitest';
import { DataFileError } from '../../lib/errors.ts';
import { loadCatalog, parseCatalog } from './load-catalog.ts';
import { regionGroupOf } from './region-groups.ts';

const HEADER =
  'vendor,region,zone,instance_type,gpu,gpu_count,gpu_memory_gib,vcpus,memory_gib,on_demand_usd_per_hour,spot_usd_per_hour';

describe('catalog', () => {
  it('loads the bundled catalog: one offering per capacity type with a price', () => {
    const offerings = loadCatalog();
    expect(offerings.length).toBe(2126); // 1069 rows, 1060 with spot, 3 (p5e) spot-only
    const p5 = offerings.filter(
      (o) => o.vendor === 'aws' && o.region === 'us-east-1' && o.instanceType === 'p5.48xlarge',
    );
    expect(p5.map((o) => o.capacityType).sort()).toEqual(['on-demand', 'spot']);
    expect(p5.find((o) => o.capacityType === 'on-demand')?.microsPerHour).toBe(55_040_000);
    expect(new Set(offerings.map((o) => o.id)).size).toBe(offerings.length);
  });

  it('derives region groups and honours overrides', () => {
    expect(regionGroupOf('aws', 'us-east-1')).toBe('us');
    expect(regionGroupOf('gcp', 'europe-west4')).toBe('eu');
    expect(regionGroupOf('aws', 'ap-northeast-1')).toBe('asia');
    expect(regionGroupOf('aws', 'ap-southeast-2')).toBe('oceania');
    expect(regionGroupOf('azure', 'eastus2')).toBe('us');
    expect(regionGroupOf('gcp', 'northamerica-northeast1', { 'gcp/northamerica-northeast1': 'us' })).toBe(
      'us',
    );
  });

  it('names the file, line and field of a malformed row', () => {
    const text = `${HEADER}\naws,us-east-1,,p5.48xlarge,H100,8,80,192,2048,55.04,\naws,us-east-1,,g6.xlarge,L4,one,24,4,16,0.805,\n`;
    const error = (() => {
      try {
        parseCatalog(text, 'bad.csv');
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(DataFileError);
    expect((error as DataFileError).message).toBe(
      'bad.csv, line 3, field gpu_count: must be a positive integer (got "one")',
    );
  });

  it('rejects a file without the catalog columns and an unreadable file', () => {
    expect(() => parseCatalog('a,b\n1,2\n', 'x.csv')).toThrow(/x\.csv, line 1, field vendor: missing column/);
    expect(() => loadCatalog('/nonexistent/catalog.csv')).toThrow(/cannot read the catalog/);
    expect(() => parseCatalog(`${HEADER}\naws,us-east-1,,p5,H100,8,80,192,2048,abc,\n`, 'p.csv')).toThrow(
      /line 2, field on_demand_usd_per_hour/,
    );
  });
});
