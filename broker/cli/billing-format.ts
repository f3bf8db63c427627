/**
 * What the billing commands (`usage`, `invoice`, `costs`, `prices`, `tenant limits`) share: flags for dates and
 * months checked before anything is sent, money as USD with every micro-dollar shown, and plain tables.
 */
import Table from 'cli-table3';
import { ValidationError } from '../../lib/errors.ts';
import { MICROS_PER_USD } from '../../lib/money.ts';
import { monthBounds } from '../billing/months.ts';

/** An ISO 8601 date or time as the API takes it; anything else is a ValidationError naming the flag. */
export function parseTimeFlag(flag: string, text: string): string {
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(Date.parse(text)))
    throw new ValidationError(
      flag,
      `"${text}" is not a date or time like 2026-11-01 or 2026-11-23T10:00:00Z`,
    );
  return text;
}

/** A `YYYY-MM` month; anything else is a ValidationError naming the flag (`"2026-13" is not a month like 2026-11`). */
export function parseMonthFlag(flag: string, text: string): string {
  monthBounds(text, flag);
  return text;
}

/** Integer micro-USD as `$1.234567` (`-$0.500000` below zero), exactly. */
export function formatMicroUsd(micros: number): string {
  const sign = micros < 0 ? '-' : '';
  const abs = Math.abs(micros);
  return `${sign}$${Math.floor(abs / MICROS_PER_USD)}.${String(abs % MICROS_PER_USD).padStart(6, '0')}`;
}

/** Seconds as hours with three decimals. */
export function formatHours(seconds: number): string {
  return (seconds / 3600).toFixed(3);
}

/** A compact table without colours; `numeric` columns are right-aligned. */
export function plainTable(head: readonly string[], numeric: readonly number[] = []): Table.Table {
  return new Table({
    head: [...head],
    colAligns: head.map((_, i) => (numeric.includes(i) ? 'right' : 'left')),
    style: { head: [], border: [], compact: true },
  });
}
