/**
 * Prices as the clouds' price APIs write them, in integer micro-USD. Decimal strings ("0.424600", AWS's
 * "1.0060000000") convert exactly when their digits past the sixth decimal are zeros; finer prices, exponent forms
 * and JSON numbers (Azure's `retailPrice`) round to the nearest micro, since nothing finer can be billed.
 */
import { type Micros, parseUsd, usdToMicros } from '../lib/money.ts';

/** The price in micros, or undefined when it is not a non-negative amount. */
export function usdPriceMicros(price: string | number): Micros | undefined {
  // A JSON number prints as its shortest decimal (0.176346 → "0.176346"), which parses exactly.
  const text = typeof price === 'number' ? String(price) : price.trim();
  try {
    return parseUsd(text);
  } catch {
    const usd = Number(text);
    return text !== '' && Number.isFinite(usd) && usd >= 0 ? usdToMicros(usd) : undefined;
  }
}
