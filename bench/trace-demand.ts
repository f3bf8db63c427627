import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';

/**
 * Hourly GPU demand from the Alibaba GPU cluster trace (2023): GPUs held by running pods in each hour, split
 * into pods that need one instance of 8 GPUs (gang 8) and the rest (gang 1).
 */
export interface TraceSeries {
  single: number[];
  gang8: number[];
}

export function loadPodTrace(path: string): TraceSeries {
  const rows = parse(readFileSync(path, 'utf8'), { columns: true, skip_empty_lines: true }) as Record<
    string,
    string
  >[];
  const hours = Math.ceil(Math.max(...rows.map((r) => Number(r.deletion_time))) / 3600) + 1;
  const single = new Array<number>(hours).fill(0);
  const gang8 = new Array<number>(hours).fill(0);
  for (const r of rows) {
    const gpus = Number(r.num_gpu);
    if (!(gpus > 0)) continue;
    const from = Math.floor(Number(r.scheduled_time || r.creation_time) / 3600);
    const to = Math.ceil(Number(r.deletion_time) / 3600);
    const series = gpus === 8 ? gang8 : single;
    for (let h = from; h < to && h < hours; h++) series[h] = (series[h] as number) + gpus;
  }
  return { single, gang8 };
}
