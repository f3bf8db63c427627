/**
 * Money is integer micro-USD (1 USD = 1,000,000 micros). Floating point appears only where a price is read from
 * text or handed to a solver; every stored or billed amount is a safe integer.
 */
export type Micros = number & { readonly __brand: 'micro-USD' };

export const MICROS_PER_USD = 1_000_000;
const SECONDS_PER_HOUR = 3_600;
const MS_PER_HOUR = 3_600_000;
const MS_PER_HOUR_BIG = BigInt(MS_PER_HOUR);

/** Parses a decimal USD string ("55.04", "0.0001") exactly into micros; more than 6 decimals is an error. */
export function parseUsd(text: string): Micros {
  const match = /^(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!match) throw new RangeError(`not a non-negative decimal USD amount: "${text}"`);
  const [, whole = '0', fraction = ''] = match;
  if (/[1-9]/.test(fraction.slice(6))) throw new RangeError(`more precision than 1 micro-USD: "${text}"`);
  return micros(Number(whole) * MICROS_PER_USD + Number(fraction.slice(0, 6).padEnd(6, '0')));
}

/** Rounds a USD float to the nearest micro. */
export function usdToMicros(usd: number): Micros {
  if (!Number.isFinite(usd)) throw new RangeError(`not a finite USD amount: ${usd}`);
  return micros(Math.round(usd * MICROS_PER_USD));
}

/** USD as a float, for display, the API's `usd` fields and the solver (never for amounts that are billed). */
export function microsToUsd(amount: number): number {
  return amount / MICROS_PER_USD;
}

/** A USD float rounded to the nearest micro, still a float: figures of a plan, which come from a solver's floats. */
export function roundUsdToMicro(usd: number): number {
  return Math.round(usd * MICROS_PER_USD) / MICROS_PER_USD;
}

/** Checks that a number is a safe integer and brands it. */
export function micros(value: number): Micros {
  if (!Number.isSafeInteger(value)) throw new RangeError(`micro-USD amounts are safe integers, got ${value}`);
  return value as Micros;
}

/**
 * Cost of `durationMs` at `microsPerHour`, rounded half up to a whole micro. Uses BigInt because price × ms
 * overflows 2^53 for long intervals.
 */
export function costOf(microsPerHour: Micros, durationMs: number): Micros {
  if (!Number.isSafeInteger(durationMs) || durationMs < 0) throw new RangeError(`durationMs: ${durationMs}`);
  const product = BigInt(microsPerHour) * BigInt(durationMs);
  return micros(Number((product + MS_PER_HOUR_BIG / 2n) / MS_PER_HOUR_BIG));
}

/**
 * Cost of `durationMs` at `microsPerHour` in fractional micros, not rounded: for a running sum that is rounded once
 * at its end (a simulation's cost series).
 */
export function unroundedCostOf(microsPerHour: number, durationMs: number): number {
  return (microsPerHour * durationMs) / MS_PER_HOUR;
}

/** Cost of whole `seconds` at `microsPerHour`, rounded up to a whole micro (what an instance cost in a window). */
export function costOfSecondsRoundedUp(microsPerHour: number, seconds: number): number {
  return Math.ceil((seconds * microsPerHour) / SECONDS_PER_HOUR);
}

/** A rate per hour as a rate per second, rounded up to a whole micro (a price book's rate never undercuts it). */
export function perSecondRateRoundedUp(microsPerHour: number): number {
  return Math.ceil(microsPerHour / SECONDS_PER_HOUR);
}

/** A rate per second as a rate per hour (exact for whole micros per second). */
export function perHourRate(microsPerSecond: number): number {
  return microsPerSecond * SECONDS_PER_HOUR;
}

/** "$1,234.56" with cents; sub-cent amounts keep up to 4 decimals so that small prices stay readable. */
export function formatUsd(amount: Micros): string {
  const usd = microsToUsd(amount);
  const digits = Math.abs(usd) < 0.01 && usd !== 0 ? 4 : 2;
  return `${usd < 0 ? '-' : ''}$${Math.abs(usd).toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  })}`;
}
