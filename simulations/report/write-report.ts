import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SimulationResults } from '../results.ts';
import { renderReport } from './render-report.ts';

export interface ReportFiles {
  /** `report.html`: the self-contained report. */
  readonly html: string;
  /** `results.json`: the results it was rendered from, pretty-printed. */
  readonly json: string;
}

/** Writes `report.html` and `results.json` into `outDir`, creating it if missing. */
export async function writeReport(outDir: string, results: SimulationResults): Promise<ReportFiles> {
  await mkdir(outDir, { recursive: true });
  const files: ReportFiles = { html: join(outDir, 'report.html'), json: join(outDir, 'results.json') };
  await writeFile(files.json, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(files.html, await renderReport(results));
  return files;
}
