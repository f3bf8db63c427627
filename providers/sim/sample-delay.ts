import type { Random } from '../../lib/random.ts';
import type { Delay } from './scenario.ts';

/** Draws one delay in integer ms from a distribution. */
export function sampleDelay(delay: Delay, random: Random): number {
  switch (delay.kind) {
    case 'fixed':
      return delay.ms;
    case 'uniform':
      return random.int(delay.minMs, delay.maxMs);
    case 'lognormal': {
      const value = Math.round(delay.medianMs * Math.exp(delay.sigma * random.normal()));
      return delay.maxMs === undefined ? value : Math.min(value, delay.maxMs);
    }
  }
}
