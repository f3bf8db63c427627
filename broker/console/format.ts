/** How the console writes money, durations and times: short, fixed-width-friendly, in UTC. */
import { microsToUsd } from '../../lib/money.ts';

const dollars = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
const rate = new Intl.NumberFormat('en-US', {
  style: 'currency',
  currency: 'USD',
  minimumFractionDigits: 2,
  maximumFractionDigits: 4,
});

export function usd(value: number): string {
  return dollars.format(value);
}

/** A price per hour: cents are not enough for a GPU-second's share. */
export function usdPerHour(value: number): string {
  return `${rate.format(value)}/h`;
}

export function microUsd(micros: number): string {
  return usd(microsToUsd(micros));
}

export function duration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1_000);
  if (s < 60) return `${s} s`;
  if (s < 3_600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const h = Math.floor(s / 3_600);
  if (h < 48) return `${h} h ${Math.floor((s % 3_600) / 60)} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** `2026-12-07 17:30:05` (UTC). */
export function time(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

export function percent(share: number): string {
  return `${(share * 100).toFixed(1)} %`;
}

/** Hours, with two decimals below ten (a young broker's GPU-hours are small). */
export function hours(seconds: number): string {
  const h = seconds / 3_600;
  return h < 10 ? h.toFixed(2) : h.toFixed(1);
}
