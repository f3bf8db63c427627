/**
 * Durable simulated clouds: clouds that crash (their process dies: no more writes, no more timers), stay down for
 * a while and are restored from their state file behave exactly as clouds that never stopped, given the same seed
 * and the same calls. What fell due while they were down (boots, boot failures, shutdowns, spot reclaims replayed
 * from the traces, outages, price changes) happened at its own time, as the rules say.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { DataFileError } from '../../lib/errors.ts';
import { Random } from '../../lib/random.ts';
import { loadCatalog } from '../catalog/load-catalog.ts';
import type { ProviderEvent } from '../provider.ts';
import { ProviderError } from '../provider-errors.ts';
import type { SimScenarioInput } from './scenario.ts';
import { createSimClouds, type SimClouds } from './sim-clouds.ts';
import { readSimState } from './sim-state.ts';

const catalog = loadCatalog();
const START = Date.UTC(2026, 10, 23);
const MINUTE = 60_000;
const STEPS = 3 * 24 * 6;
const dir = mkdtempSync(join(tmpdir(), 'gpubroker-sim-state-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SCENARIO: SimScenarioInput = {
  seed: 21,
  settings: { aws: { bootFailureRate: 0.05, throttle: { burst: 2, perSecond: 0.0025 } } },
  stock: { onDemandPerZone: 4, spotPerZone: 6 },
  outages: [
    { vendor: 'gcp', region: 'us-central1', startMs: 20 * 60 * MINUTE, durationMs: 90 * MINUTE },
    {
      vendor: 'aws',
      region: 'us-east-1',
      zone: 'us-east-1a',
      kind: 'zone-failure',
      startMs: 50 * 60 * MINUTE,
      durationMs: 30 * MINUTE,
    },
  ],
  priceChanges: [{ atMs: 30 * 60 * MINUTE, match: { gpu: 'A100-80GB' }, factor: 1.25 }],
};

/** A crash after step `after` (its calls done), then `down` steps (10 minutes each) with no clouds at all. */
interface Crash {
  readonly after: number;
  readonly down: number;
}

interface Run {
  /** Call results and events, each event with the time it happened. */
  readonly log: string[];
  /** Events of the clouds that never stopped, at the times the other run's clouds were down. */
  readonly missed: ProviderEvent[];
  readonly writes: number;
}

/**
 * The workload of determinism.test.ts (provisions, terminations, lists) against one set of clouds, crashing and
 * restoring at `crashes`. With `durable: false` the clouds never stop: they get the same calls (none while the other
 * run is down), and the events of those times are set aside in `missed`.
 */
async function run(crashes: readonly Crash[], durable: boolean, file: string): Promise<Run> {
  const clock = new VirtualClock(START);
  const offerings = catalog.filter(
    (o) => ['us-east-1', 'us-west-2', 'us-central1', 'eastus'].includes(o.region) && o.gpusPerInstance <= 8,
  );
  const log: string[] = [];
  const missed: ProviderEvent[] = [];
  let down = false;
  let writes = 0;
  const open = (): SimClouds => {
    const clouds = createSimClouds({
      clock,
      offerings: catalog,
      scenario: SCENARIO,
      ...(durable ? { stateFile: file } : {}),
    });
    for (const cloud of clouds)
      cloud.subscribe((e) => {
        if (down) missed.push(e);
        else log.push(JSON.stringify(e));
      });
    return clouds;
  };
  let clouds = open();
  const workload = new Random(1234);
  const owned: { vendor: string; id: string }[] = [];
  let downUntil = -1;
  for (let step = 0; step < STEPS; step++) {
    await clock.advanceBy(10 * MINUTE);
    if (step === downUntil) {
      down = false;
      if (durable) clouds = open();
    }
    if (down) continue;
    const offering = workload.pick(offerings);
    const cloud = clouds.find((c) => c.vendor === offering.vendor);
    if (!cloud) continue;
    try {
      const launched = await cloud.provision({
        offeringId: offering.id,
        count: workload.int(1, 3),
        idempotencyKey: `step-${step}`,
        tags: { step: String(step) },
      });
      owned.push(...launched.map((i) => ({ vendor: i.vendor, id: i.id })));
      log.push(`${clock.now()} launched ${launched.map((i) => i.id).join(' ')}`);
    } catch (error) {
      if (!(error instanceof ProviderError)) throw error;
      log.push(`${clock.now()} ${error.constructor.name} ${error.message}`);
    }
    if (owned.length > 0 && workload.chance(0.3)) {
      const victim = owned.splice(workload.int(0, owned.length - 1), 1)[0];
      const target = clouds.find((c) => c.vendor === victim?.vendor);
      await target?.terminate([victim?.id ?? '']).catch((error: unknown) => log.push(String(error)));
    }
    if (step % 12 === 0)
      for (const c of clouds)
        log.push(
          `${clock.now()} ${c.vendor} ${JSON.stringify(await c.list({ includeTerminated: true }).catch(String))}`,
        );
    const crash = crashes.find((c) => c.after === step);
    if (crash) {
      down = true;
      downUntil = step + crash.down;
      if (durable) {
        // The process dies: nothing more is written, no timer fires.
        writes += clouds.writer?.writes ?? 0;
        clouds.writer?.abandon();
        for (const c of clouds) await c.close();
      }
    }
  }
  // Everything each vendor holds at the end, as the API shows it and as it would save it.
  for (const c of clouds) {
    log.push(`${c.vendor} ${JSON.stringify(await c.list({ includeTerminated: true }).catch(String))}`);
    // Timers are numbered anew on restore: their order is what counts, and the logs above compare it.
    log.push(
      `${c.vendor} ${JSON.stringify(c.snapshotState(), (key, value) => (key === 'seq' ? undefined : value))}`,
    );
  }
  writes += clouds.writer?.writes ?? 0;
  for (const c of clouds) await c.close();
  return { log, missed, writes };
}

describe('durable simulated clouds', () => {
  it('restored after a crash, behave as clouds that never stopped; time down is caught up by their rules', async () => {
    const crashes: Crash[] = [
      { after: 30, down: 1 },
      { after: 100, down: 18 },
      { after: 175, down: 10 },
      { after: 250, down: 150 },
      { after: 401, down: 1 },
    ];
    const file = join(dir, 'clouds.json');
    const durable = await run(crashes, true, file);
    const steady = await run(crashes, false, join(dir, 'unused.json'));
    expect(durable.log.length).toBeGreaterThan(300);
    expect(durable.log).toEqual(steady.log);
    expect(durable.writes).toBeGreaterThan(100);
    // While down, the rules went on: instances booted, failed to boot, ended; spot was reclaimed; a zone failed.
    const missed = steady.missed.map((e) =>
      e.kind === 'state-changed' ? `${e.to}:${e.reason ?? ''}` : e.kind,
    );
    for (const what of [
      'running:',
      'terminated:requested',
      'terminated:preempted',
      'terminated:failed',
      'interruption-notice',
      'failure',
      'price-changed',
    ])
      expect(missed).toContain(what);
  });

  it('writes nothing without a state file, and refuses a file of another scenario or a damaged one', async () => {
    const clock = new VirtualClock(START);
    const plain = createSimClouds({ clock, offerings: catalog, scenario: { seed: 3, vendors: ['aws'] } });
    expect(plain.writer).toBeUndefined();

    const file = join(dir, 'refused.json');
    const clouds = createSimClouds({
      clock,
      offerings: catalog,
      scenario: { seed: 3, vendors: ['aws'] },
      stateFile: file,
    });
    const [aws] = clouds;
    const offering = catalog.find((o) => o.vendor === 'aws' && o.capacityType === 'on-demand');
    await aws?.provision({ offeringId: offering?.id ?? '', count: 1, idempotencyKey: 'one' });
    expect(readSimState(file)?.vendors.aws?.instances).toHaveLength(1);
    await aws?.close();
    // Restoring (the boot falls due meanwhile) writes nothing: a start that fails later leaves the file as it was.
    const before = readFileSync(file, 'utf8');
    await clock.advanceBy(10 * MINUTE);
    const restored = createSimClouds({
      clock,
      offerings: catalog,
      scenario: { seed: 3, vendors: ['aws'] },
      stateFile: file,
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect((await restored[0]?.list({}))?.map((i) => i.state)).toEqual(['running']);
    for (const c of restored) await c.close();
    expect(() =>
      createSimClouds({
        clock,
        offerings: catalog,
        scenario: { seed: 4, vendors: ['aws'] },
        stateFile: file,
      }),
    ).toThrow(/another scenario/);
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 100));
    expect(() =>
      createSimClouds({
        clock,
        offerings: catalog,
        scenario: { seed: 3, vendors: ['aws'] },
        stateFile: file,
      }),
    ).toThrow(DataFileError);
  });
});
