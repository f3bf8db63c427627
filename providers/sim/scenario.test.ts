import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RealClock } from '../../lib/clock.ts';
import { DataFileError } from '../../lib/errors.ts';
import { loadCatalog } from '../catalog/load-catalog.ts';
import { loadSimScenario, simScenario, vendorSettings } from './scenario.ts';
import { SimProvider } from './sim-provider.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-scenario-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('scenarios', () => {
  it('fills every default, and merges vendor overrides field by field', () => {
    const scenario = simScenario({
      settings: { gcp: { provisioningDelay: { spot: { kind: 'fixed', ms: 5 } } } },
    });
    expect(scenario.seed).toBe(1);
    expect(scenario.stock).toEqual({ onDemandPerZone: 16, spotPerZone: 16, rules: [] });
    const gcp = vendorSettings(scenario, 'gcp');
    expect(gcp.provisioningDelay.spot).toEqual({ kind: 'fixed', ms: 5 });
    expect(gcp.provisioningDelay['on-demand']).toEqual({ kind: 'uniform', minMs: 45_000, maxMs: 180_000 });
    expect(gcp.interruptionWarningMs).toBe(30_000);
    expect(vendorSettings(scenario, 'aws').interruptionWarningMs).toBe(120_000);
  });

  it('loads a JSON scenario and a TS module scenario', async () => {
    const json = join(dir, 'tight.json');
    writeFileSync(json, JSON.stringify({ seed: 'tight', stock: { onDemandPerZone: 1 } }));
    expect((await loadSimScenario(json)).stock.onDemandPerZone).toBe(1);
    const ts = join(dir, 'outage.ts');
    writeFileSync(
      ts,
      "export default { seed: 4, outages: [{ vendor: 'aws', startMs: 0, durationMs: 60_000 as number }] };\n",
    );
    const loaded = await loadSimScenario(ts);
    expect(loaded.outages[0]).toMatchObject({ vendor: 'aws', kind: 'api', durationMs: 60_000 });
  });

  it('names the file and the field of a bad scenario', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ stock: { spotPerZone: 'many' } }));
    const error = await loadSimScenario(bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataFileError);
    expect((error as DataFileError).message).toMatch(/bad\.json, field stock\.spotPerZone: /);
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{ "seed": ');
    await expect(loadSimScenario(broken)).rejects.toThrow(/broken\.json: cannot read the scenario/);
    await expect(loadSimScenario(join(dir, 'missing.json'))).rejects.toBeInstanceOf(DataFileError);
  });

  it('runs on the real clock too', async () => {
    const provider = new SimProvider({
      vendor: 'aws',
      clock: new RealClock(),
      offerings: loadCatalog().filter((o) => o.id === 'aws/us-east-1/g5.xlarge/on-demand'),
      scenario: simScenario({
        settings: {
          aws: { provisioningDelay: { 'on-demand': { kind: 'fixed', ms: 20 } }, bootFailureRate: 0 },
        },
      }),
    });
    const [instance] = await provider.provision({
      offeringId: 'aws/us-east-1/g5.xlarge/on-demand',
      count: 1,
      idempotencyKey: 'real',
    });
    for await (const event of provider.events()) {
      if (event.kind === 'state-changed' && event.to === 'running') {
        expect(event.instanceId).toBe(instance?.id);
        expect(event.atMs - (instance?.launchedAtMs ?? 0)).toBeGreaterThanOrEqual(19);
        break;
      }
    }
    await provider.close();
  });
});
