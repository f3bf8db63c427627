/**
 * Finding this host's NVIDIA GPUs through `nvidia-smi --query-gpu=index,name,memory.total --format=csv`, and
 * naming them as the catalog does (`NVIDIA H100 80GB HBM3` → `H100`, `NVIDIA A100-SXM4-40GB` → `A100-40GB`).
 */
import { execFile } from 'node:child_process';
import { parse } from 'csv-parse/sync';

export interface GpuDevice {
  readonly index: number;
  /** As nvidia-smi reports it. */
  readonly name: string;
  /** The catalog's GPU name. */
  readonly gpu: string;
  /** Total memory in MiB; 0 when nvidia-smi reports none or `[N/A]`. */
  readonly memoryMiB: number;
}

export const NVIDIA_SMI_ARGS = ['--query-gpu=index,name,memory.total', '--format=csv'] as const;

/** Parses the CSV output (with or without its header line). Throws when a line is not `index, name, memory`. */
export function parseNvidiaSmiCsv(text: string): GpuDevice[] {
  const rows: string[][] = parse(text, { trim: true, skip_empty_lines: true, relax_column_count: true });
  const devices: GpuDevice[] = [];
  for (const [n, row] of rows.entries()) {
    if (n === 0 && row[0] === 'index') continue;
    const [indexText = '', name = '', memoryText = ''] = row;
    const index = Number(indexText);
    if (row.length !== 3 || !/^\d+$/.test(indexText) || name.length === 0)
      throw new Error(`unexpected nvidia-smi line ${n + 1}: "${row.join(', ')}"`);
    const memory = /^(\d+)\s*MiB$/.exec(memoryText);
    const memoryMiB = memory ? Number(memory[1]) : 0;
    devices.push({ index, name, gpu: catalogGpuName(name, memoryMiB), memoryMiB });
  }
  return devices;
}

/** The catalog's name for a GPU model reported by nvidia-smi; unknown models keep a cleaned-up name. */
export function catalogGpuName(reported: string, memoryMiB: number): string {
  const name = reported.toUpperCase();
  const has = (model: string) => new RegExp(`(^|[^A-Z0-9])${model}([^A-Z0-9]|$)`).test(name);
  if (has('A100')) {
    const gb = /(\d+)GB/.exec(name)?.[1];
    const large = gb ? Number(gb) >= 60 : memoryMiB >= 60_000;
    return large ? 'A100-80GB' : 'A100-40GB';
  }
  for (const model of [
    'B300',
    'B200',
    'H200',
    'H100',
    'L40S',
    'L4',
    'A10G',
    'A10',
    'T4',
    'V100',
    'P100',
    'P4',
  ])
    if (has(model)) return model;
  for (const model of ['K80', 'M60']) if (has(model)) return model;
  return reported
    .replace(/^(NVIDIA|TESLA|QUADRO)\s+/i, '')
    .replace(/^GEFORCE\s+/i, '')
    .trim()
    .replace(/\s+/g, '-');
}

export type NvidiaSmiResult =
  | { readonly found: true; readonly devices: GpuDevice[] }
  | { readonly found: false; readonly reason: string };

/**
 * Runs nvidia-smi (5 s limit). `found: false` when it is not installed, fails (no driver, no device) or lists
 * nothing; the reason says which, for the log.
 */
export function detectNvidiaGpus(command = 'nvidia-smi'): Promise<NvidiaSmiResult> {
  return new Promise((resolve) => {
    execFile(command, [...NVIDIA_SMI_ARGS], { timeout: 5_000 }, (error, stdout, stderr) => {
      if (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const reason =
          code === 'ENOENT'
            ? `${command} is not installed`
            : `${command} failed: ${(stderr || stdout || error.message).trim().split('\n')[0]}`;
        return resolve({ found: false, reason });
      }
      try {
        const devices = parseNvidiaSmiCsv(stdout);
        resolve(devices.length > 0 ? { found: true, devices } : { found: false, reason: 'no GPU listed' });
      } catch (parseError) {
        resolve({ found: false, reason: (parseError as Error).message });
      }
    });
  });
}
