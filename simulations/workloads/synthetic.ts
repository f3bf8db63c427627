/**
 * Synthetic workloads, generated from a seed (calls of one function on one L4 GPU; service times lognormal):
 * - `diurnal`: Poisson arrivals whose rate follows the day, 1 call/s on average, ±80 %, busiest at 14:00 UTC;
 *   median service 20 s.
 * - `bursty`: a quiet 0.2 call/s, with bursts of 5 calls/s that start every 2 h and last 10 min on average
 *   (both exponential); median service 10 s.
 * - `batch`: batch fan-out: every hour on the hour 300 calls arrive within one second, over a background of
 *   0.1 call/s; median service 60 s.
 * Arrivals come from the thinning method (Lewis–Shedler) on the seeded generator: the same seed, the same requests.
 */
import { Random } from '../../lib/random.ts';
import { CALL_FUNCTION_DEFAULTS, type CallRequest, HOUR_MS, type Workload } from './workload.ts';

export const SYNTHETIC_WORKLOADS = ['diurnal', 'bursty', 'batch'] as const;
export type SyntheticName = (typeof SYNTHETIC_WORKLOADS)[number];

/** Monday 2026-01-05 00:00 UTC: synthetic workloads start at midnight, so the day's shape is in place. */
const SYNTHETIC_START_MS = Date.UTC(2026, 0, 5);
const DAY_MS = 24 * HOUR_MS;

export function syntheticWorkload(name: SyntheticName, hours: number, seed: number): Workload {
  const durationMs = Math.round(hours * HOUR_MS);
  const random = new Random(`synthetic|${name}|${seed}`);
  const requests =
    name === 'diurnal'
      ? diurnal(durationMs, random)
      : name === 'bursty'
        ? bursty(durationMs, random)
        : batch(durationMs, random);
  return {
    name,
    startMs: SYNTHETIC_START_MS,
    durationMs,
    gpu: 'L4',
    function: CALL_FUNCTION_DEFAULTS,
    requests,
  };
}

/** Median `medianMs`, spread `sigma` (of the underlying normal), at least 100 ms. */
function lognormalMs(random: Random, medianMs: number, sigma: number): number {
  return Math.max(100, Math.round(medianMs * Math.exp(random.normal(0, sigma))));
}

/** Arrivals of a Poisson process with rate `ratePerS(t)` ≤ `maxRatePerS` over [fromMs, toMs). */
function poisson(
  random: Random,
  fromMs: number,
  toMs: number,
  maxRatePerS: number,
  ratePerS: (tMs: number) => number,
): number[] {
  const times: number[] = [];
  if (maxRatePerS <= 0) return times;
  for (let t = fromMs; ; ) {
    t += random.exponential(1000 / maxRatePerS);
    if (t >= toMs) return times;
    if (random.next() * maxRatePerS < ratePerS(t)) times.push(Math.floor(t));
  }
}

function diurnal(durationMs: number, random: Random): CallRequest[] {
  const mean = 1;
  const amplitude = 0.8;
  const peakMs = 14 * HOUR_MS;
  const rate = (t: number) => mean * (1 + amplitude * Math.cos((2 * Math.PI * (t - peakMs)) / DAY_MS));
  return poisson(random, 0, durationMs, mean * (1 + amplitude), rate).map((atMs) => ({
    kind: 'call',
    atMs,
    serviceMs: lognormalMs(random, 20_000, 0.6),
  }));
}

function bursty(durationMs: number, random: Random): CallRequest[] {
  const times = poisson(random, 0, durationMs, 0.2, () => 0.2);
  for (let t = random.exponential(2 * HOUR_MS); t < durationMs; t += random.exponential(2 * HOUR_MS)) {
    const length = random.exponential(10 * 60_000);
    times.push(...poisson(random, t, Math.min(durationMs, t + length), 5, () => 5));
  }
  times.sort((a, b) => a - b);
  return times.map((atMs) => ({ kind: 'call', atMs, serviceMs: lognormalMs(random, 10_000, 0.8) }));
}

function batch(durationMs: number, random: Random): CallRequest[] {
  const times = poisson(random, 0, durationMs, 0.1, () => 0.1);
  for (let hour = 0; hour * HOUR_MS < durationMs; hour++)
    for (let i = 0; i < 300; i++) times.push(hour * HOUR_MS + random.int(0, 999));
  times.sort((a, b) => a - b);
  while (times.length > 0 && (times.at(-1) as number) >= durationMs) times.pop();
  return times.map((atMs) => ({ kind: 'call', atMs, serviceMs: lognormalMs(random, 60_000, 0.5) }));
}
