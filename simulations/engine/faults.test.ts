/** Faults drawn from the seed: parsed with field errors, the same for the same seed, inside the window. */
import { describe, expect, it } from 'vitest';
import { Random } from '../../lib/random.ts';
import { crashAfterMs, injectedOutages, injectedStorms, parseFaults } from './faults.ts';

const REGIONS = [
  { vendor: 'aws', region: 'us-east-1' },
  { vendor: 'gcp', region: 'us-central1' },
];

describe('injected faults', () => {
  it('parse, naming --faults on a bad spec', () => {
    expect(parseFaults('outages=3,crashes=0.02,storms=1')).toEqual({ outages: 3, crashes: 0.02, storms: 1 });
    expect(parseFaults('crashes=0.5')).toEqual({ outages: 0, crashes: 0.5, storms: 0 });
    expect(() => parseFaults('fires=2')).toThrow(/--faults: "fires=2"/);
    expect(() => parseFaults('crashes=2')).toThrow(/--faults: crashes is a probability/);
    expect(() => parseFaults('outages=1.5')).toThrow(/--faults: outages is a whole number/);
  });

  it('are the same for the same seed, differ for another, and fall inside the window', () => {
    const plan = parseFaults('outages=5,storms=2,crashes=0.3');
    const draw = (seed: string) => {
      const random = new Random(seed);
      return {
        outages: injectedOutages(plan, random.fork('o'), 3_600_000, REGIONS),
        storms: injectedStorms(plan, random.fork('s'), 3_600_000, ['aws', 'gcp']),
        crashes: Array.from({ length: 50 }, () => crashAfterMs(plan, random.fork('c'))),
      };
    };
    expect(draw('1')).toEqual(draw('1'));
    expect(draw('1')).not.toEqual(draw('2'));
    const { outages, storms } = draw('1');
    expect(outages).toHaveLength(5);
    for (const o of outages) {
      expect(o.startMs).toBeGreaterThanOrEqual(0);
      expect(o.startMs).toBeLessThan(3_600_000);
      expect(o.durationMs).toBeGreaterThanOrEqual(600_000);
      // A zone failure names its region; an API outage takes the vendor's whole API.
      expect(o.kind === 'zone-failure' ? typeof o.region : o.region).toBe(
        o.kind === 'zone-failure' ? 'string' : undefined,
      );
    }
    // Each storm hits every vendor at one moment.
    expect(storms).toHaveLength(4);
    expect(new Set(storms.map((s) => s.atMs)).size).toBe(2);
    const random = new Random('crash');
    const crashes = Array.from({ length: 2_000 }, () => crashAfterMs(plan, random));
    const share = crashes.filter((c) => c !== undefined).length / crashes.length;
    expect(share).toBeGreaterThan(0.25);
    expect(share).toBeLessThan(0.35);
  });
});
