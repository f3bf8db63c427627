/**
 * A user's own workload in the simplest form: one request per row,
 *   arrival_seconds,duration_seconds[,kind][,gpus]
 * `arrival_seconds` from the workload's start; `kind` is `call` (default: a function call on one GPU running
 * `duration_seconds`) or `lease` (`gpus` GPUs on one node, default 1, held `duration_seconds`). Rows need not be
 * in order.
 */
import { type CsvTable, Fields, requireColumns } from './csv.ts';
import { byArrival, CALL_FUNCTION_DEFAULTS, type SimRequest, type Workload } from './workload.ts';

export const GENERIC_COLUMNS = ['arrival_seconds', 'duration_seconds'] as const;

const GENERIC_START_MS = Date.UTC(2026, 0, 5);

export function genericWorkload(table: CsvTable, name: string, gpu: string): Workload {
  requireColumns(table, GENERIC_COLUMNS);
  const requests: SimRequest[] = table.rows.map((row) => {
    const f = new Fields(table, row);
    const atMs = Math.round(f.number('arrival_seconds', 0, 10 * 365 * 86_400) * 1000);
    const durationMs = Math.round(f.number('duration_seconds', 0, 365 * 86_400) * 1000);
    const kind = f.text('kind') || 'call';
    if (kind !== 'call' && kind !== 'lease') f.fail('kind', 'must be "call" or "lease"');
    const gpus = f.number('gpus', 1, 16, 1);
    if (!Number.isInteger(gpus)) f.fail('gpus', 'must be a whole number of GPUs');
    if (kind === 'call') {
      if (gpus !== 1) f.fail('gpus', 'a call runs on one GPU; use kind "lease" for several');
      return { kind: 'call', atMs, serviceMs: durationMs };
    }
    return { kind: 'lease', atMs, gpus, durationMs: Math.max(1000, durationMs) };
  });
  byArrival(requests);
  const hasCalls = requests.some((r) => r.kind === 'call');
  return {
    name,
    startMs: GENERIC_START_MS,
    durationMs: (requests.at(-1)?.atMs ?? 0) + 1000,
    gpu,
    ...(hasCalls ? { function: CALL_FUNCTION_DEFAULTS } : {}),
    requests,
  };
}
