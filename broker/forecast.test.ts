import { describe, expect, it } from 'vitest';
import type { Demand } from './demand.ts';
import { PeakAndLevelForecaster } from './forecast.ts';
import { type BrokerPolicyInput, brokerPolicy } from './policy.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const policy = (o: BrokerPolicyInput = {}) =>
  brokerPolicy({ buffer: { default: { gpus: 0, fraction: 0 }, perGpu: {} }, ...o });
const h100 = (gpus: number, gangSize = 1, regionGroup = 'us'): Demand => ({
  gpu: 'H100',
  regionGroup,
  gangSize,
  gpus,
});

describe('PeakAndLevelForecaster', () => {
  it('forecasts the recent peak, flat over the horizon, while the smoothed level is below it', () => {
    const p = policy({ horizonPeriods: 3 });
    const f = new PeakAndLevelForecaster();
    f.observe(0, [h100(10)], p);
    expect(f.forecast(0, p, ['H100'])).toEqual([
      { gpu: 'H100', regionGroup: 'us', gangSize: 1, gpus: [10, 10, 10] },
    ]);
    // Demand falls to 4: the peak of the last hour holds the forecast at 10.
    f.observe(MINUTE, [h100(4)], p);
    expect(f.forecast(MINUTE, p, ['H100'])[0]?.gpus).toEqual([10, 10, 10]);
  });

  it('follows the smoothed level once the peak has left the window, and decays it sample by sample', () => {
    const p = policy({ forecast: { windowMs: 10 * MINUTE, smoothing: 0.5, margin: 0 } });
    const f = new PeakAndLevelForecaster();
    f.observe(0, [h100(16)], p);
    // Four samples of 4 after the first: level 16 → 10 → 7 → 5.5 → 4.75.
    for (let i = 1; i <= 4; i++) f.observe(i * 20 * MINUTE, [h100(4)], p);
    // The window (10 min) holds only the last sample (4); the level, 4.75, rounds up to 5.
    expect(f.forecast(80 * MINUTE, p, ['H100'])[0]?.gpus).toEqual([5, 5]);
  });

  it('adds the safety margin and rounds up to whole gangs', () => {
    const p = policy({ forecast: { windowMs: HOUR, smoothing: 0.3, margin: 0.5 } });
    const f = new PeakAndLevelForecaster();
    f.observe(0, [h100(10), h100(12, 8)], p);
    expect(f.forecast(0, p, ['H100'])).toEqual([
      { gpu: 'H100', regionGroup: 'us', gangSize: 1, gpus: [15, 15] },
      // 12 × 1.5 = 18 GPUs in gangs of 8: three gangs.
      { gpu: 'H100', regionGroup: 'us', gangSize: 8, gpus: [24, 24] },
    ]);
  });

  it('keeps each (GPU, region group, gang size) apart, in a stable order', () => {
    const p = policy();
    const f = new PeakAndLevelForecaster();
    f.observe(
      0,
      [h100(3, 1, 'eu'), { gpu: 'A100-80GB', regionGroup: 'us', gangSize: 1, gpus: 2 }, h100(16, 8)],
      p,
    );
    f.observe(MINUTE, [h100(1, 1, 'eu')], p);
    expect(
      f.forecast(MINUTE, p, ['H100', 'A100-80GB']).map((c) => [c.gpu, c.regionGroup, c.gangSize, c.gpus[0]]),
    ).toEqual([
      ['A100-80GB', 'us', 1, 2],
      ['H100', 'eu', 1, 3],
      ['H100', 'us', 8, 16],
    ]);
  });

  it('drops a class whose demand ended once its peak has left the window and its level has decayed', () => {
    const p = policy({ forecast: { windowMs: 10 * MINUTE, smoothing: 1, margin: 0 } });
    const f = new PeakAndLevelForecaster();
    f.observe(0, [h100(8)], p);
    // Nothing open any more: the class gets zero samples (smoothing 1: the level is the last sample).
    f.observe(MINUTE, [], p);
    expect(f.forecast(MINUTE, p, ['H100'])[0]?.gpus).toEqual([8, 8]);
    f.observe(20 * MINUTE, [], p);
    expect(f.forecast(20 * MINUTE, p, ['H100'])).toEqual([]);
    // With no sample left in the window it stays out, and new demand brings it back.
    expect(f.forecast(40 * MINUTE, p, ['H100'])).toEqual([]);
    f.observe(41 * MINUTE, [h100(2)], p);
    expect(f.forecast(41 * MINUTE, p, ['H100'])[0]?.gpus).toEqual([2, 2]);
  });

  it('holds a zero-demand class for each buffered GPU type in every warm region group', () => {
    const p = policy({
      warmRegionGroups: ['us', 'eu'],
      buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 8, fraction: 0 } } },
    });
    const f = new PeakAndLevelForecaster();
    f.observe(0, [h100(4)], p);
    expect(f.forecast(0, p, ['H100', 'L4'])).toEqual([
      { gpu: 'H100', regionGroup: 'eu', gangSize: 1, gpus: [0, 0] },
      { gpu: 'H100', regionGroup: 'us', gangSize: 1, gpus: [4, 4] },
    ]);
    // A GPU type the catalog does not sell gets no class, buffered or not.
    expect(f.forecast(0, p, []).map((c) => c.regionGroup)).toEqual(['us']);
  });

  it('changes nothing when asked: a forecast under a shorter window (a what-if) forgets no sample', () => {
    const p = policy({ forecast: { windowMs: HOUR, smoothing: 1, margin: 0 } });
    const f = new PeakAndLevelForecaster();
    f.observe(0, [h100(12)], p);
    f.observe(30 * MINUTE, [h100(2)], p);
    const narrow = policy({ forecast: { windowMs: 10 * MINUTE, smoothing: 1, margin: 0 } });
    expect(f.forecast(30 * MINUTE, narrow, ['H100'])[0]?.gpus).toEqual([2, 2]);
    // The policy in force still sees the peak of 12 within its hour.
    expect(f.forecast(30 * MINUTE, p, ['H100'])[0]?.gpus).toEqual([12, 12]);
  });
});
