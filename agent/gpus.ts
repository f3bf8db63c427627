/**
 * What GPUs this machine has and whether they are usable: from `nvidia-smi` (named as the catalog names them), or
 * virtual ones (`--virtual-gpus 4xH100`) for machines without GPUs: tests, the embedded default, a demo.
 */
import { execFile } from 'node:child_process';
import { ValidationError } from '../lib/errors.ts';
import type { GpuReport, Health } from './protocol.ts';

export interface GpuInventory {
  readonly gpus: readonly GpuReport[];
  readonly health: Health;
}

/** `4xH100` → four H100s indexed 0–3. The count is 1–64; the name as the catalog spells it. */
export function parseVirtualGpus(text: string, setting = '--virtual-gpus'): GpuReport[] {
  const match = /^([1-9]\d{0,1})x([A-Za-z0-9][A-Za-z0-9._-]{0,63})$/.exec(text.trim());
  const count = match ? Number(match[1]) : 0;
  if (!match || count > 64)
    throw new ValidationError(setting, `"${text}" is not COUNTxGPU with a count of 1–64 (e.g. 4xH100)`);
  return Array.from({ length: count }, (_, index) => ({ index, name: match[2] as string }));
}

/** A source of the machine's GPUs and health, asked again at every health check. */
export type GpuSource = () => Promise<GpuInventory>;

export function virtualGpuSource(gpus: readonly GpuReport[]): GpuSource {
  const inventory: GpuInventory = { gpus, health: { ok: true, problems: [] } };
  return async () => inventory;
}

/**
 * The GPUs nvidia-smi lists, with the driver version. Unhealthy (and so out of placement) when nvidia-smi fails,
 * lists nothing, or lists fewer GPUs than it did at start (a GPU fell off the bus).
 */
export function nvidiaGpuSource(command = 'nvidia-smi'): GpuSource {
  let expected: number | undefined;
  let last: readonly GpuReport[] = [];
  return async () => {
    // Loaded on a machine with GPUs only (it brings a CSV parser): one with virtual GPUs keeps its memory.
    const { detectNvidiaGpus } = await import('../providers/local/nvidia-smi.ts');
    const found = await detectNvidiaGpus(command);
    if (!found.found) return { gpus: last, health: { ok: false, problems: [found.reason] } };
    last = found.devices.map((d) => ({ index: d.index, name: d.gpu, memoryMiB: d.memoryMiB }));
    expected ??= last.length;
    const problems =
      last.length < expected ? [`nvidia-smi lists ${last.length} GPUs, ${expected} at start`] : [];
    const driverVersion = await nvidiaDriverVersion(command);
    return {
      gpus: last,
      health: { ok: problems.length === 0, problems, ...(driverVersion ? { driverVersion } : {}) },
    };
  };
}

function nvidiaDriverVersion(command: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(
      command,
      ['--query-gpu=driver_version', '--format=csv,noheader'],
      { timeout: 5_000 },
      (error, stdout) => resolve(error ? undefined : stdout.split('\n')[0]?.trim() || undefined),
    );
  });
}
