/**
 * `--workload NAME|FILE`: a bundled trace by name, a synthetic generator, or a CSV file of the user's. A file is
 * read in whichever of the known layouts its header matches (the Stable Diffusion requests, the GPU cluster pods,
 * the Azure LLM requests, or the generic `arrival_seconds,duration_seconds[,kind][,gpus]`).
 */
import { existsSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { DataFileError, ValidationError } from '../../lib/errors.ts';
import { ALIBABA_GPU_PATH, POD_COLUMNS, podWorkload } from './alibaba-gpu.ts';
import { ALIBABA_SD_PATH, SD_COLUMNS, sdWorkload } from './alibaba-sd.ts';
import {
  AZURE_CODE_PATH,
  AZURE_CONV_PATH,
  DEFAULT_THROUGHPUT,
  LLM_COLUMNS,
  llmWorkload,
  type Throughput,
} from './azure-llm.ts';
import { readCsv } from './csv.ts';
import { GENERIC_COLUMNS, genericWorkload } from './generic-csv.ts';
import { SYNTHETIC_WORKLOADS, type SyntheticName, syntheticWorkload } from './synthetic.ts';
import type { Workload } from './workload.ts';

export const TRACE_WORKLOADS = ['alibaba-sd', 'alibaba-gpu', 'azure-code', 'azure-conv'] as const;
export const WORKLOAD_NAMES = [...TRACE_WORKLOADS, ...SYNTHETIC_WORKLOADS] as const;

export interface WorkloadOptions {
  /** The GPU type asked for (default: the workload's own). */
  readonly gpu?: string;
  readonly throughput?: Throughput;
  /** Length of a synthetic workload (default 24 h). */
  readonly syntheticHours?: number;
  readonly seed: number;
}

const DEFAULT_GPU: Record<string, string> = {
  'alibaba-sd': 'L4',
  'alibaba-gpu': 'V100',
  'azure-code': 'H100',
  'azure-conv': 'H100',
};

export function resolveWorkload(nameOrFile: string, options: WorkloadOptions): Workload {
  const throughput = options.throughput ?? DEFAULT_THROUGHPUT;
  const gpuFor = (kind: string) => options.gpu ?? DEFAULT_GPU[kind] ?? 'L4';
  switch (nameOrFile) {
    case 'alibaba-sd':
      return sdWorkload(readCsv(ALIBABA_SD_PATH), nameOrFile, gpuFor(nameOrFile));
    case 'alibaba-gpu':
      return podWorkload(readCsv(ALIBABA_GPU_PATH), nameOrFile, gpuFor(nameOrFile));
    case 'azure-code':
      return llmWorkload(readCsv(AZURE_CODE_PATH), nameOrFile, throughput, gpuFor(nameOrFile));
    case 'azure-conv':
      return llmWorkload(readCsv(AZURE_CONV_PATH), nameOrFile, throughput, gpuFor(nameOrFile));
  }
  if ((SYNTHETIC_WORKLOADS as readonly string[]).includes(nameOrFile)) {
    const w = syntheticWorkload(nameOrFile as SyntheticName, options.syntheticHours ?? 24, options.seed);
    return options.gpu ? { ...w, gpu: options.gpu } : w;
  }
  if (!existsSync(nameOrFile) || extname(nameOrFile).toLowerCase() !== '.csv')
    throw new ValidationError(
      '--workload',
      `"${nameOrFile}" is neither a workload (${WORKLOAD_NAMES.join(', ')}) nor a CSV file`,
    );
  const table = readCsv(nameOrFile);
  const name = basename(nameOrFile, extname(nameOrFile));
  const has = (columns: readonly string[]) => columns.every((c) => table.header.includes(c));
  if (has(SD_COLUMNS)) return sdWorkload(table, name, gpuFor('alibaba-sd'));
  if (has(POD_COLUMNS)) return podWorkload(table, name, gpuFor('alibaba-gpu'));
  if (has(LLM_COLUMNS)) return llmWorkload(table, name, throughput, gpuFor('azure-code'));
  if (has(GENERIC_COLUMNS)) return genericWorkload(table, name, gpuFor('generic'));
  throw new DataFileError(
    nameOrFile,
    1,
    undefined,
    `unknown layout: expected the columns ${GENERIC_COLUMNS.join(',')}[,kind][,gpus], or those of a bundled trace (${SD_COLUMNS.join(',')} | ${POD_COLUMNS.join(',')} | ${LLM_COLUMNS.join(',')})`,
  );
}
