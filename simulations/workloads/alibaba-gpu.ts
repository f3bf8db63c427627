/**
 * The Alibaba GPU cluster trace of 2023 (`alibaba-gpu`): each task that asked for GPUs becomes a lease of its
 * gang size (`num_gpu`, 1–8; several GPUs on one node) held for as long as it ran (`deletion_time` −
 * `scheduled_time`). Tasks with no GPU and tasks that were never scheduled (pending at the end of the trace) are
 * left out; a fractional GPU (`gpu_milli` < 1000) counts as a whole one, as a lease is whole GPUs. Arrival is
 * `creation_time` (s from the trace's start). The cluster's GPUs were mostly V100, T4 and P100; the simulation
 * asks for `V100` (sold by all three clouds and measured by the spot traces).
 *
 * The trace is a snapshot of the pods present over its last weeks: it keeps a task created long before only if it
 * still ran then (the bundled one: ~30 tasks in its first 115 days, then 60–590 a day for 35 days). So t = 0 is
 * the start of the first day on which at least 10 tasks were created; a task created earlier and still running
 * then arrives at t = 0 for the rest of its run, one that ended before is left out.
 */
import { fileURLToPath } from 'node:url';
import { type CsvTable, Fields, readCsv, requireColumns } from './csv.ts';
import { byArrival, type LeaseRequestSpec, type Workload } from './workload.ts';

export const ALIBABA_GPU_PATH = fileURLToPath(
  new URL('../traces/alibaba-gpu-2023-pods.csv', import.meta.url),
);

export const POD_COLUMNS = ['num_gpu', 'creation_time', 'deletion_time', 'scheduled_time'] as const;

/** The trace gives seconds from its start; the calendar start is not published, so t = 0 is pinned here. */
const TRACE_START_MS = Date.UTC(2023, 0, 2);

export function loadAlibabaGpu(file = ALIBABA_GPU_PATH, name = 'alibaba-gpu', gpu = 'V100'): Workload {
  return podWorkload(readCsv(file), name, gpu);
}

/** Tasks created on a day for it to count as the start of the trace's activity. */
const ACTIVE_DAY_TASKS = 10;
const DAY_MS = 86_400_000;

export function podWorkload(table: CsvTable, name: string, gpu: string): Workload {
  requireColumns(table, POD_COLUMNS);
  const tasks: { createdMs: number; scheduledMs: number; endMs: number; gpus: number }[] = [];
  let end = 0;
  for (const row of table.rows) {
    const f = new Fields(table, row);
    const gpus = f.number('num_gpu', 0, 16);
    if (!Number.isInteger(gpus)) f.fail('num_gpu', 'must be a whole number of GPUs');
    const created = f.number('creation_time', 0);
    const deleted = f.number('deletion_time', 0);
    end = Math.max(end, deleted * 1000);
    if (gpus === 0 || f.text('scheduled_time') === '') continue;
    const scheduled = f.number('scheduled_time', 0);
    if (deleted < scheduled) f.fail('deletion_time', 'must not be before scheduled_time');
    tasks.push({
      createdMs: Math.round(created * 1000),
      scheduledMs: Math.round(scheduled * 1000),
      endMs: Math.round(deleted * 1000),
      gpus,
    });
  }
  const perDay = new Map<number, number>();
  for (const t of tasks)
    perDay.set(Math.floor(t.createdMs / DAY_MS), (perDay.get(Math.floor(t.createdMs / DAY_MS)) ?? 0) + 1);
  const firstDay = Math.min(
    ...[...perDay].filter(([, n]) => n >= ACTIVE_DAY_TASKS).map(([day]) => day),
    Infinity,
  );
  const originMs = Number.isFinite(firstDay) ? firstDay * DAY_MS : 0;
  const requests: LeaseRequestSpec[] = [];
  for (const t of tasks) {
    const atMs = Math.max(0, t.createdMs - originMs);
    const durationMs = t.endMs - Math.max(t.scheduledMs, originMs);
    if (durationMs >= 1000) requests.push({ kind: 'lease', atMs, gpus: t.gpus, durationMs });
  }
  byArrival(requests);
  return {
    name,
    startMs: TRACE_START_MS + originMs,
    durationMs: Math.max(end - originMs, (requests.at(-1)?.atMs ?? 0) + 1000),
    gpu,
    requests,
  };
}
