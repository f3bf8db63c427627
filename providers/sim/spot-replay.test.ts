/**
 * Replayed spot behaviour matches its source: over a replayed trace, the preemptions the simulated cloud sends and
 * the share of time an offering is unavailable equal what the JSON file says, computed here straight from the file.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { loadCatalog } from '../catalog/load-catalog.ts';
import type { ProviderEvent } from '../provider.ts';
import { InsufficientCapacityError } from '../provider-errors.ts';
import { simScenario } from './scenario.ts';
import { SimProvider } from './sim-provider.ts';
import { SpotReplay } from './spot-replay.ts';
import { BUNDLED_SPOT_TRACES_DIR } from './spot-trace.ts';

const catalog = loadCatalog();
const OFFERING = 'aws/us-east-1/p3.2xlarge/spot';
const ZONE = 'us-east-1a';
const START = Date.UTC(2026, 10, 23);

function traceFiles(kind: 'availability' | 'preemption'): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (entry.endsWith('.json'))
        files.push(relative(BUNDLED_SPOT_TRACES_DIR, path).split(sep).join('/'));
    }
  };
  walk(join(BUNDLED_SPOT_TRACES_DIR, kind));
  return files.sort();
}

function rawTrace(name: string): { gapMs: number; data: number[] } {
  const json = JSON.parse(readFileSync(join(BUNDLED_SPOT_TRACES_DIR, name), 'utf8'));
  return { gapMs: json.metadata.gap_seconds * 1000, data: json.data };
}

function cloudFor(pool: { availability?: string | null; preemption?: string | null; shiftMs: number }) {
  const clock = new VirtualClock(START);
  const scenario = simScenario({
    seed: 5,
    settings: {
      aws: {
        throttle: null,
        bootFailureRate: 0,
        zonesPerRegion: 1,
        provisioningDelay: { spot: { kind: 'fixed', ms: 0 } },
        quotas: [],
      },
    },
    stock: { spotPerZone: 64 },
    spot: { pools: [{ match: { offeringId: OFFERING }, ...pool }] },
  });
  const offerings = catalog.filter((o) => o.id === OFFERING);
  const provider = new SimProvider({ vendor: 'aws', clock, offerings, scenario });
  const events: ProviderEvent[] = [];
  provider.subscribe((e) => events.push(e));
  return { clock, provider, events };
}

describe('spot replay fidelity', () => {
  it.each(traceFiles('preemption'))('%s: preemptions equal the drops in the file', async (name) => {
    const { gapMs, data } = rawTrace(name);
    const first = Math.floor(data.length / 3);
    const { clock, provider, events } = cloudFor({
      availability: null,
      preemption: name,
      shiftMs: first * gapMs,
    });

    // The fleet mirrors what the measurement held: it launches when the trace's count rises, and the cloud
    // takes instances back when it drops. Counted straight from the file, over [first, end).
    let expected = 0;
    const expectedTimes: number[] = [];
    let key = 0;
    const launch = async (count: number) => {
      if (count > 0) await provider.provision({ offeringId: OFFERING, count, idempotencyKey: `k${key++}` });
    };
    await launch(data[first] as number);
    for (let i = first + 1; i < data.length; i++) {
      const prev = data[i - 1] as number;
      const cur = data[i] as number;
      if (cur < prev) {
        expected += prev - cur;
        for (let k = 0; k < prev - cur; k++) expectedTimes.push(START + (i - first) * gapMs);
      }
      if (cur > prev) {
        await clock.advanceTo(START + (i - first) * gapMs);
        await launch(cur - prev);
      }
    }
    await clock.advanceTo(START + (data.length - first) * gapMs - 1);
    const notices = events.filter((e) => e.kind === 'interruption-notice');
    expect(notices).toHaveLength(expected);
    expect(notices.map((e) => e.atMs)).toEqual(expectedTimes);
    for (const notice of notices)
      if (notice.kind === 'interruption-notice') expect(notice.terminateAtMs - notice.atMs).toBe(120_000);
    const reclaimed = events.filter((e) => e.kind === 'state-changed' && e.reason === 'preempted');
    expect(reclaimed.length).toBe(notices.filter((n) => n.atMs + 120_000 < clock.now()).length);
    await provider.close();
  });

  it.each(traceFiles('availability'))('%s: unavailable exactly when the file says 0', async (name) => {
    const { gapMs, data } = rawTrace(name);
    const first = 17;
    const { clock, provider } = cloudFor({ availability: name, preemption: null, shiftMs: first * gapMs });
    const ticks = data.length - first;
    const zerosInFile = data.slice(first).filter((v) => v === 0).length;
    let zerosSeen = 0;
    for (let t = 0; t < ticks; t++) {
      // Sample inside the tick, so the check does not depend on which side of a boundary it falls.
      await clock.advanceTo(START + t * gapMs + Math.floor(gapMs / 2));
      const { stock } = provider.capacity(OFFERING, ZONE);
      if (stock === 0) zerosSeen++;
      expect(stock === 0).toBe(data[first + t] === 0);
    }
    expect(zerosSeen / ticks).toBe(zerosInFile / ticks);
    await provider.close();
  });

  it('refuses launches and reports the offering unavailable during a replayed stock-out', async () => {
    const name = 'availability/1-node/aws-02-15-2023/us-east-1a_v100_1.json';
    const { gapMs, data } = rawTrace(name);
    const { clock, provider } = cloudFor({ availability: name, preemption: null, shiftMs: 0 });
    let checked = 0;
    for (let i = 0; i < data.length && checked < 400; i += 37, checked++) {
      await clock.advanceTo(START + i * gapMs + 1);
      const quote = (await provider.offerings())[0];
      expect(quote?.available).toBe(data[i] !== 0);
      const outcome = await provider
        .provision({ offeringId: OFFERING, count: 1, idempotencyKey: `s${i}` })
        .then((instances) => instances[0]?.id)
        .catch((e: unknown) => e);
      if (data[i] === 0) expect(outcome).toBeInstanceOf(InsufficientCapacityError);
      else {
        expect(typeof outcome).toBe('string');
        await provider.terminate([outcome as string]);
      }
      await clock.advanceBy(5 * 60_000);
    }
    await provider.close();
  });

  it('maps pools onto the traces measured closest to them, the same way for the same seed', () => {
    const scenario = simScenario({ seed: 9 });
    const replay = new SpotReplay(scenario, START);
    const other = new SpotReplay(simScenario({ seed: 10 }), START);
    const offering = (id: string) => {
      const found = catalog.find((o) => o.id === id);
      if (!found) throw new Error(id);
      return found;
    };
    const v100 = offering('aws/us-west-2/p3.2xlarge/spot');
    const measuredHere = replay.poolTraces(v100, 'us-west-2a');
    expect(measuredHere.availability?.trace.name).toMatch(/us-west-2a_v100_1\.json$/);
    expect(measuredHere.preemption?.trace.vendor).toBe('aws');
    expect(replay.poolTraces(v100, 'us-west-2a')).toBe(measuredHere);
    expect(new SpotReplay(scenario, START).poolTraces(v100, 'us-west-2a')).toEqual(measuredHere);

    const eight = replay.poolTraces(offering('aws/us-east-1/p5.48xlarge/spot'), 'us-east-1a');
    expect(eight.availability?.trace.gpusPerInstance).toBe(8);
    const gcp = catalog.find((o) => o.vendor === 'gcp' && o.capacityType === 'spot');
    expect(replay.poolTraces(gcp ?? v100, 'x-a').preemption?.trace.vendor).toBe('gcp');
    const azure = catalog.find((o) => o.vendor === 'azure' && o.capacityType === 'spot' && o.gpu === 'V100');
    expect(replay.poolTraces(azure ?? v100, 'eastus-1').preemption?.trace.name).toMatch(/aws-.*v100/);

    // Shifts are seeded: another seed places the clouds' start elsewhere in the trace.
    const shifts = (r: SpotReplay) =>
      catalog
        .filter((o) => o.capacityType === 'spot' && o.vendor === 'aws')
        .slice(0, 20)
        .map((o) => r.poolTraces(o, 'z').availability?.shiftMs);
    expect(shifts(replay)).not.toEqual(shifts(other));
  });
});
