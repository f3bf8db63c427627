/**
 * One real spot trace (see spot-traces/README.md): a series sampled every `gapMs`, with what its path says about
 * where and on what it was measured.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataFileError } from '../../lib/errors.ts';

export type SpotTraceKind = 'availability' | 'preemption';

export interface SpotTrace {
  /** Path relative to the bundled folder (`availability/1-node/aws-02-15-2023/us-east-1a_v100_1.json`), or the file. */
  readonly name: string;
  readonly kind: SpotTraceKind;
  /** Instances probed or launched by the measurement (the `N-node` folder); the series' ceiling. */
  readonly nodes: number;
  readonly vendor: string | undefined;
  readonly zone: string | undefined;
  /** GPU model measured (`V100`, `K80`), undefined for CPU instances. */
  readonly gpu: string | undefined;
  /** GPUs per instance measured (`_1`, `_8`), undefined for CPU instances. */
  readonly gpusPerInstance: number | undefined;
  readonly gapMs: number;
  readonly data: Int32Array;
  /** Largest value in the series. */
  readonly maxValue: number;
  /** Indices i ≥ 1 where data[i] < data[i - 1], ascending. */
  readonly dropIndices: Int32Array;
}

export const BUNDLED_SPOT_TRACES_DIR = fileURLToPath(new URL('./spot-traces/', import.meta.url));

const GPU_NAMES: Readonly<Record<string, string>> = { v100: 'V100', k80: 'K80', a100: 'A100-40GB', t4: 'T4' };

/** Reads and validates one trace file. `name` is how it is reported; path facts are read from it when present. */
export function loadSpotTrace(file: string, name = file): SpotTrace {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new DataFileError(
      file,
      undefined,
      undefined,
      `cannot read the spot trace: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const body = parsed as { metadata?: { gap_seconds?: unknown }; data?: unknown };
  const gap = body?.metadata?.gap_seconds;
  if (typeof gap !== 'number' || !(gap > 0))
    throw new DataFileError(file, undefined, 'metadata.gap_seconds', 'must be a positive number of seconds');
  if (!Array.isArray(body.data) || body.data.length < 2)
    throw new DataFileError(file, undefined, 'data', 'must be an array of at least two samples');
  const data = new Int32Array(body.data.length);
  let maxValue = 0;
  const drops: number[] = [];
  body.data.forEach((value: unknown, i: number) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 1_000_000)
      throw new DataFileError(
        file,
        undefined,
        `data[${i}]`,
        `must be a non-negative integer, got ${String(value)}`,
      );
    data[i] = value;
    maxValue = Math.max(maxValue, value);
    if (i > 0 && value < (data[i - 1] as number)) drops.push(i);
  });

  const facts = factsFromPath(name);
  return {
    name,
    kind: facts.kind ?? 'availability',
    nodes: Math.max(facts.nodes ?? maxValue, maxValue, 1),
    vendor: facts.vendor,
    zone: facts.zone,
    gpu: facts.gpu,
    gpusPerInstance: facts.gpusPerInstance,
    gapMs: Math.round(gap * 1000),
    data,
    maxValue,
    dropIndices: Int32Array.from(drops),
  };
}

/** `{kind}/{N}-node/{vendor}-{date}/{zone}_{instance}.json`; any part may be missing in a user's own file. */
function factsFromPath(name: string): Partial<Omit<SpotTrace, 'name' | 'data' | 'dropIndices'>> {
  const parts = name.split(/[\\/]/);
  const kind = parts.find((p) => p === 'availability' || p === 'preemption') as SpotTraceKind | undefined;
  const nodesPart = parts.find((p) => /^\d+-node$/.test(p));
  const vendorPart = parts.find((p) => /^(aws|gcp|azure)-/.test(p));
  const base = (parts.at(-1) ?? '').replace(/\.json$/, '');
  const underscore = base.indexOf('_');
  const zone = underscore > 0 ? base.slice(0, underscore) : undefined;
  const instance = underscore > 0 ? base.slice(underscore + 1) : '';
  const gpuMatch = /^([a-z]\d+)_(\d+)$/.exec(instance);
  const gpu = gpuMatch ? GPU_NAMES[gpuMatch[1] as string] : undefined;
  return {
    kind,
    nodes: nodesPart ? Number.parseInt(nodesPart, 10) : undefined,
    vendor: vendorPart?.split('-')[0],
    zone,
    gpu,
    gpusPerInstance: gpu && gpuMatch ? Number(gpuMatch[2]) : undefined,
  };
}

let bundled: readonly SpotTrace[] | undefined;

/** Every trace shipped in `spot-traces/`, sorted by name (loaded once). */
export function bundledSpotTraces(): readonly SpotTrace[] {
  if (!bundled) {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir).sort()) {
        const path = join(dir, entry);
        if (statSync(path).isDirectory()) walk(path);
        else if (entry.endsWith('.json')) files.push(path);
      }
    };
    walk(BUNDLED_SPOT_TRACES_DIR);
    bundled = files.map((file) =>
      loadSpotTrace(file, relative(BUNDLED_SPOT_TRACES_DIR, file).split(sep).join('/')),
    );
  }
  return bundled;
}

/** A bundled trace by its relative name, or a trace file on disk by its path. */
export function spotTraceByName(name: string): SpotTrace {
  const found = bundledSpotTraces().find((t) => t.name === name);
  return found ?? loadSpotTrace(name);
}
