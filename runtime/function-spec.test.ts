import { describe, expect, it } from 'vitest';
import { ValidationError } from '../lib/errors.ts';
import { parseFunctionOptions } from './function-spec.ts';

function fieldOf(input: unknown, prefix?: string): string {
  try {
    parseFunctionOptions(input, prefix);
  } catch (error) {
    if (error instanceof ValidationError) return error.field;
    throw error;
  }
  throw new Error('expected a ValidationError');
}

describe('parseFunctionOptions', () => {
  it('fills in every default', () => {
    expect(parseFunctionOptions({ gpu: 'H100' })).toEqual({
      gpus: [{ gpu: 'H100', count: 1 }],
      cpu: 1,
      memoryMiB: 4096,
      minContainers: 0,
      maxContainers: 100,
      bufferContainers: 0,
      scaledownWindowMs: 60_000,
      timeoutMs: 300_000,
      retries: 0,
      concurrency: 1,
      network: 'egress',
    });
  });

  it('takes an image: npm packages need their layer, variables need names', () => {
    const layer = 'f'.repeat(64);
    expect(parseFunctionOptions({ gpu: 'H100', image: { base: 'node20' } }).image).toEqual({
      base: 'node20',
      npm: [],
      env: {},
    });
    expect(
      parseFunctionOptions({
        gpu: 'H100',
        image: { base: 'node20', npm: ['sharp@0.33'], layer, env: { A: '1' } },
      }).image,
    ).toEqual({ base: 'node20', npm: ['sharp@0.33'], env: { A: '1' }, layer });
    for (const [image, field] of [
      [{ base: 'node20', npm: ['sharp@0.33'] }, 'image.layer'],
      [{ base: 'node18' }, 'image.base'],
      [{ base: 'node20', env: { 'NOT-A-NAME': 'x' } }, 'image.env.NOT-A-NAME'],
      [{ base: 'node20', npm: ['two words'], layer }, 'image.npm.0'],
      [{ base: 'node20', layer: 'nope' }, 'image.layer'],
    ] as const)
      expect(() => parseFunctionOptions({ gpu: 'H100', image }), JSON.stringify(image)).toThrow(
        expect.objectContaining({ field }),
      );
    expect(() => parseFunctionOptions({ gpu: 'H100', network: 'internet' })).toThrow(
      expect.objectContaining({ field: 'network' }),
    );
  });

  it('reads a GPU count on one node and a preference list in order', () => {
    expect(parseFunctionOptions({ gpu: 'H100:8' }).gpus).toEqual([{ gpu: 'H100', count: 8 }]);
    expect(parseFunctionOptions({ gpu: ['H100', 'A100-80GB:2', 'L4'] }).gpus).toEqual([
      { gpu: 'H100', count: 1 },
      { gpu: 'A100-80GB', count: 2 },
      { gpu: 'L4', count: 1 },
    ]);
  });

  it('keeps every option given', () => {
    const spec = parseFunctionOptions({
      gpu: 'L4',
      cpu: 8,
      memoryMiB: 32_768,
      minContainers: 1,
      maxContainers: 4,
      bufferContainers: 2,
      scaledownWindowMs: 5_000,
      timeoutMs: 1_000,
      retries: 10,
      concurrency: 16,
      regions: ['us-east-1', 'us-east-1', 'europe-west4'],
    });
    expect(spec).toMatchObject({ cpu: 8, maxContainers: 4, retries: 10, concurrency: 16 });
    expect(spec.regions).toEqual(['us-east-1', 'europe-west4']);
  });

  it.each([
    [{}, 'gpu'],
    [{ gpu: '' }, 'gpu'],
    [{ gpu: 'H100:0' }, 'gpu'],
    [{ gpu: 'H100:17' }, 'gpu'],
    [{ gpu: 'H100:two' }, 'gpu'],
    [{ gpu: 8 }, 'gpu'],
    [{ gpu: [] }, 'gpu'],
    [{ gpu: ['H100', 'A100 80GB'] }, 'gpu.1'],
    [{ gpu: ['H100', 'L4', 'H100'] }, 'gpu.2'],
    [{ gpu: 'H100', cpu: 0 }, 'cpu'],
    [{ gpu: 'H100', cpu: 1.5 }, 'cpu'],
    [{ gpu: 'H100', memoryMiB: 64 }, 'memoryMiB'],
    [{ gpu: 'H100', minContainers: -1 }, 'minContainers'],
    [{ gpu: 'H100', minContainers: 5, maxContainers: 2 }, 'minContainers'],
    [{ gpu: 'H100', maxContainers: 0 }, 'maxContainers'],
    [{ gpu: 'H100', bufferContainers: 0.5 }, 'bufferContainers'],
    [{ gpu: 'H100', scaledownWindowMs: 10 }, 'scaledownWindowMs'],
    [{ gpu: 'H100', timeoutMs: 0 }, 'timeoutMs'],
    [{ gpu: 'H100', retries: 11 }, 'retries'],
    [{ gpu: 'H100', concurrency: 0 }, 'concurrency'],
    [{ gpu: 'H100', regions: [] }, 'regions'],
    [{ gpu: 'H100', regions: ['us-east-1', ''] }, 'regions.1'],
    [{ gpu: 'H100', timeout: 5 }, 'timeout'],
    ['H100', 'input'],
  ])('rejects %j naming the field %s', (input, field) => {
    expect(fieldOf(input)).toBe(field);
  });

  it('names the field under a prefix', () => {
    expect(fieldOf({ gpu: 'H100', retries: -1 }, 'functions.embed')).toBe('functions.embed.retries');
    expect(fieldOf({ gpu: 'H100', extra: 1 }, 'functions.embed')).toBe('functions.embed.extra');
  });

  it('says what a GPU entry should look like', () => {
    expect(() => parseFunctionOptions({ gpu: 'H100:0' })).toThrow(/gpu: expected a GPU type.*"H100:8"/);
  });
});
