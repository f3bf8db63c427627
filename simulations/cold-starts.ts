/**
 * Cold starts drawn from real model-load latencies: the 7,531 base-model loads of Alibaba's serverless Stable
 * Diffusion service (`data/alibaba-genai-basemodel-load-ms.csv`, see `data/README.md`). A draw picks one measured
 * value uniformly (the empirical distribution), from the seeded generator it is given.
 */
import { fileURLToPath } from 'node:url';
import type { Random } from '../lib/random.ts';
import { Fields, readCsv, requireColumns } from './workloads/csv.ts';

export const COLD_START_PATH = fileURLToPath(
  new URL('./data/alibaba-genai-basemodel-load-ms.csv', import.meta.url),
);

let cached: Float64Array | undefined;

/** The measured latencies, ms (read once per process). */
export function coldStartSample(file = COLD_START_PATH): Float64Array {
  if (file === COLD_START_PATH && cached) return cached;
  const table = readCsv(file);
  requireColumns(table, ['value']);
  const sample = Float64Array.from(table.rows, (row) => new Fields(table, row).number('value', 0, 3_600_000));
  if (file === COLD_START_PATH) cached = sample;
  return sample;
}

/** Draws cold starts (ms) from the sample with the given generator. */
export function coldStartSampler(random: Random, sample = coldStartSample()): () => number {
  return () => sample[Math.floor(random.next() * sample.length)] as number;
}
