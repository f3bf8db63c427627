/**
 * Reading trace CSVs with csv-parse: rows keep their 1-based line numbers, and every problem (a malformed row, a
 * missing column, a value that is not a number) is a DataFileError naming the file, the line and the column.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { DataFileError } from '../../lib/errors.ts';

export interface CsvRow {
  readonly line: number;
  readonly record: Readonly<Record<string, string>>;
}

export interface CsvTable {
  readonly file: string;
  readonly header: readonly string[];
  readonly rows: readonly CsvRow[];
}

export function readCsv(file: string): CsvTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new DataFileError(file, undefined, undefined, `cannot read the file: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return parseCsv(text, file);
}

export function parseCsv(text: string, file: string): CsvTable {
  let parsed: { record: Record<string, string>; info: { lines: number } }[];
  try {
    parsed = parse(text, { columns: true, info: true, skip_empty_lines: true, trim: true });
  } catch (error) {
    const line = (error as { lines?: number }).lines;
    throw new DataFileError(file, line, undefined, `malformed CSV: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const header = (text.split(/\r?\n/, 1)[0] ?? '').split(',').map((h) => h.trim());
  return { file, header, rows: parsed.map(({ record, info }) => ({ line: info.lines, record })) };
}

/** Throws DataFileError at line 1 when a column is missing. */
export function requireColumns(table: CsvTable, columns: readonly string[]): void {
  const missing = columns.filter((c) => !table.header.includes(c));
  if (missing.length > 0)
    throw new DataFileError(table.file, 1, missing[0], `missing column(s): ${missing.join(', ')}`);
}

/** Typed access to one row's fields; a bad value throws DataFileError naming file, line and column. */
export class Fields {
  constructor(
    private readonly table: CsvTable,
    private readonly row: CsvRow,
  ) {}

  text(column: string): string {
    return this.row.record[column] ?? '';
  }

  fail(column: string, message: string): never {
    throw new DataFileError(
      this.table.file,
      this.row.line,
      column,
      `${message} (got "${this.text(column)}")`,
    );
  }

  /** A finite number ≥ min (and ≤ max); empty is an error unless `fallback` is given. */
  number(column: string, min: number, max = Number.POSITIVE_INFINITY, fallback?: number): number {
    const raw = this.text(column);
    if (raw === '' && fallback !== undefined) return fallback;
    const value = Number(raw);
    if (raw === '' || !Number.isFinite(value) || value < min || value > max)
      this.fail(column, `must be a number from ${min}${Number.isFinite(max) ? ` to ${max}` : ''}`);
    return value;
  }

  /** A date-time like `2024-11-15 16:57:50` or `2023-11-16 18:17:03.9799600`, read as UTC; ms since the epoch. */
  utcMs(column: string): number {
    const raw = this.text(column);
    const match = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z?$/.exec(raw);
    if (!match) return this.fail(column, 'must be a date-time like 2024-11-15 16:57:50');
    const [, y, mo, d, h, mi, s, frac = ''] = match;
    const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
    const date = new Date(ms);
    // Date.UTC rolls 2024-13-40 over into the next year; a real date reads back the same.
    if (date.getUTCMonth() !== Number(mo) - 1 || date.getUTCDate() !== Number(d) || Number(h) > 23)
      return this.fail(column, 'is not a valid date-time');
    return ms + Math.round(Number(`0.${frac || '0'}`) * 1000);
  }
}
