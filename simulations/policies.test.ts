import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataFileError, ValidationError } from '../lib/errors.ts';
import { loadPolicy, PRESETS, parsePolicy, staticPeakFirstPlan, staticPeakLaterPlans } from './policies.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-policies-'));
const write = (name: string, content: unknown) => {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
};

describe('simulation policies', () => {
  it('reads a policy file as the broker policy, with the simulation defaults under it', () => {
    const policy = loadPolicy(write('tight.json', { budgetUsdPerHour: 50, spotMaxShare: 0.3 }));
    expect(policy.name).toBe('tight');
    expect(policy.broker.budgetUsdPerHour).toBe(50);
    expect(policy.broker.spotMaxShare).toBe(0.3);
    expect(policy.broker.planSchedule).toBe('0 */5 * * * *');
    expect(policy.staticPeak).toBe(false);
    expect(policy.function).toEqual({});
  });

  it('lets a file set the schedule, static peak reservation and the function options', () => {
    const policy = loadPolicy(
      write('warm.json', {
        planSchedule: '*/30 * * * * *',
        staticPeak: true,
        function: { bufferContainers: 4 },
      }),
    );
    expect(policy.broker.planSchedule).toBe('*/30 * * * * *');
    expect(policy.staticPeak).toBe(true);
    expect(policy.function).toEqual({ bufferContainers: 4 });
  });

  it('names the file and the field of an invalid policy', () => {
    const cases: [unknown, RegExp][] = [
      [{ buffer: { default: { fraction: -1 } } }, /field policy\.buffer\.default\.fraction/],
      [{ bufer: {} }, /field policy\.bufer: unknown field/],
      [{ solver: { backend: 'cplex' } }, /field policy\.solver\.backend/],
      [{ staticPeak: 'yes' }, /field policy\.staticPeak/],
      [{ function: { gpu: 'H100' } }, /field policy\.function\.gpu: unknown field/],
      [{ function: { minContainers: -1 } }, /field policy\.function\.minContainers/],
      ['[1, 2]', /field policy: must be a JSON object/],
      ['{ not json', /not JSON/],
    ];
    for (const [content, message] of cases) {
      const path = write('bad.json', content);
      expect(() => loadPolicy(path)).toThrow(DataFileError);
      expect(() => loadPolicy(path)).toThrow(message);
    }
  });

  it('resolves built-in names, and rejects what is neither a file nor a built-in', () => {
    for (const name of Object.keys(PRESETS)) expect(loadPolicy(name).name).toBe(name);
    expect(loadPolicy('buffer-20').broker.buffer.default.fraction).toBe(0.2);
    expect(loadPolicy('greedy').broker.solver.backend).toBe('greedy');
    expect(loadPolicy('static-peak').staticPeak).toBe(true);
    expect(() => loadPolicy('buffer-99')).toThrow(ValidationError);
    expect(() => loadPolicy(join(dir, 'missing.json'))).toThrow(/cannot read the policy/);
  });

  it('holds the peak in the first plan of a static reservation and never stops anything after', () => {
    const { broker } = parsePolicy({ spotMaxShare: 0 }, 'static');
    const first = staticPeakFirstPlan(broker, 'L4', 120);
    expect(first.buffer.perGpu.L4).toEqual({ gpus: 120, fraction: 0 });
    expect(first.maxTerminateFraction).toBe(0);
    const later = staticPeakLaterPlans(broker);
    expect(later.buffer.perGpu).toEqual({});
    expect(later.maxTerminateFraction).toBe(0);
  });
});
