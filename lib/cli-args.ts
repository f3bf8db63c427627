import { ValidationError } from './errors.ts';

/** "40%" → 0.4, "0.4" → 0.4. */
export function parseFraction(flag: string, text: string): number {
  const percent = text.endsWith('%');
  const value = Number(percent ? text.slice(0, -1) : text);
  const fraction = percent ? value / 100 : value;
  if (text.trim() === '' || !Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
    throw new ValidationError(flag, `"${text}" is not a share between 0 and 1 (or 0% and 100%)`);
  }
  return fraction;
}

/** "10s", "500ms", "2m", or plain seconds → integer ms. */
export function parseDurationMs(flag: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new ValidationError(flag, `"${text}" is not a duration like 500ms, 10s or 2m`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? 's'] ?? 1000;
  return Math.round(Number(match[1]) * unit);
}

/** A positive integer within [min, max]. */
export function parseIntegerIn(flag: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < min || value > max)
    throw new ValidationError(flag, `"${text}" is not an integer from ${min} to ${max}`);
  return value;
}

/** A positive finite number up to max. */
export function parsePositive(flag: string, text: string, max: number): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0 || value > max)
    throw new ValidationError(flag, `"${text}" is not a positive number up to ${max}`);
  return value;
}
