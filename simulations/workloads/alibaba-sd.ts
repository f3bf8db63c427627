/**
 * The Alibaba serverless Stable Diffusion trace (`alibaba-sd`): each request is a call of one function on one GPU
 * that runs `exec_time_seconds` once a container takes it. Every row is replayed, failed requests included (they
 * held a GPU for their execution time too). Arrival is `gmt_create` (second resolution, UTC); t = 0 is the hour
 * of the first request. The service ran on A10-class GPUs; the simulation asks for `L4` (sold by AWS and GCP, the
 * nearest in the catalog with more than one vendor).
 */
import { fileURLToPath } from 'node:url';
import { type CsvTable, Fields, readCsv, requireColumns } from './csv.ts';
import { byArrival, CALL_FUNCTION_DEFAULTS, type CallRequest, HOUR_MS, type Workload } from './workload.ts';

export const ALIBABA_SD_PATH = fileURLToPath(
  new URL('../traces/alibaba-genai-sd-requests.csv', import.meta.url),
);

export const SD_COLUMNS = ['gmt_create', 'exec_time_seconds'] as const;

export function loadAlibabaSd(file = ALIBABA_SD_PATH, name = 'alibaba-sd', gpu = 'L4'): Workload {
  return sdWorkload(readCsv(file), name, gpu);
}

export function sdWorkload(table: CsvTable, name: string, gpu: string): Workload {
  requireColumns(table, SD_COLUMNS);
  const arrivals: { atMs: number; serviceMs: number }[] = table.rows.map((row) => {
    const f = new Fields(table, row);
    return {
      atMs: f.utcMs('gmt_create'),
      serviceMs: Math.round(f.number('exec_time_seconds', 0, 86_400) * 1000),
    };
  });
  const first = arrivals.reduce((min, a) => Math.min(min, a.atMs), Number.POSITIVE_INFINITY);
  const startMs = Number.isFinite(first) ? Math.floor(first / HOUR_MS) * HOUR_MS : 0;
  const requests: CallRequest[] = byArrival(
    arrivals.map((a) => ({ kind: 'call', atMs: a.atMs - startMs, serviceMs: a.serviceMs })),
  );
  const last = requests.at(-1)?.atMs ?? 0;
  return {
    name,
    startMs,
    durationMs: last + 1_000,
    gpu,
    function: CALL_FUNCTION_DEFAULTS,
    requests,
  };
}
