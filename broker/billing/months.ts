/** Calendar months in UTC, as invoices count them: `YYYY-MM`. */
import { ValidationError } from '../../lib/errors.ts';

const MONTH = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** `[startMs, endMs)` of a `YYYY-MM` month; ValidationError naming `field` otherwise. */
export function monthBounds(month: string, field = 'month'): { startMs: number; endMs: number } {
  const match = MONTH.exec(month);
  if (!match) throw new ValidationError(field, `"${month}" is not a month like 2026-11`);
  const year = Number(match[1]);
  const index = Number(match[2]) - 1;
  return { startMs: monthStart(year, index), endMs: monthStart(year, index + 1) };
}

/** The first millisecond of a month; unlike `Date.UTC`, years 0 to 99 are not taken for 1900 to 1999. */
function monthStart(year: number, monthIndex: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, monthIndex, 1);
  return date.getTime();
}

export function monthOf(ms: number): string {
  const date = new Date(ms);
  return `${String(date.getUTCFullYear()).padStart(4, '0')}-${String(date.getUTCMonth() + 1).padStart(2, '0')}`;
}
