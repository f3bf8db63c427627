/**
 * The crash suite (`npm run test:e2e`): a real `gpubroker serve` child process on a PGlite data directory is killed
 * with SIGKILL at seeded random moments (while serving, and sometimes while it is still starting: recovering the
 * database, reconciling), at least `CRASH_SUITE_KILLS` times (20 by default), and started again at once on the
 * same directory, while a client requests and releases leases through the HTTP API and repeats what a crash left
 * unanswered (same idempotency key). Twice: with the simulated clouds in the broker's process (the embedded
 * default, their state in the data directory), and in a process of their own (`clouds serve --state`), which is
 * killed and restarted at random moments too.
 *
 * At the end, with everything settled and stopped cleanly:
 * - no lease stuck: every lease is ready, released or failed with a reason, within a bound after the last start;
 * - no orphan: every instance the clouds hold is one the broker knows, and every instance the broker holds is in
 *   the clouds;
 * - no duplicate launch: no provision action got more instances than it asked for; an idempotency key is one lease;
 * - no double billing: no lease is billed for more GPUs at a moment than it holds;
 * - lost billed time: what a ready lease lost per outage is at most the time the broker was down (kill → first
 *   answer of the next process) plus one meter heartbeat (plus `SLACK_MS` for this machine's scheduling).
 *
 * `CRASH_SUITE_SEED` changes the seed (printed when a check fails), `CRASH_SUITE_KILLS` the number of kills.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Random } from '../lib/random.ts';
import type { Instance } from '../providers/provider.ts';
import { SIM_CLOUDS_FILE } from '../providers/sim/sim-clouds.ts';
import { readSimState } from '../providers/sim/sim-state.ts';
import { gapsAfterCrashes, peakBilledGpus } from '../runtime/meter/interval-checks.ts';
import { UsageStore } from '../runtime/meter/usage-store.ts';
import {
  type AnsweringProcess,
  freePort,
  spawnServer,
  spawnUntilAnswer,
  stopCli,
} from '../test/cli-process.ts';
import { cloudInventory, FAST_AWS_SCENARIO, FAST_POLICY } from '../test/fast-aws.ts';
import { ACTION_TAG, FLEET_TAG } from './act.ts';
import type { Lease } from './api/schemas.ts';
import { openDatabase } from './db/open-database.ts';
import { actions, instances as instancesTable, leases as leasesTable } from './db/schema.ts';

const SEED = Number(process.env.CRASH_SUITE_SEED ?? 1);
const KILLS = Number(process.env.CRASH_SUITE_KILLS ?? 20);
const HEARTBEAT_MS = 500;
/**
 * Scheduling slack of a loaded test machine (a heartbeat that fires late, a checkpoint that waits on PGlite, which
 * shares the broker's thread): the e2e files run two at a time on CI's two cores, and a checkpoint 2.07 s before a
 * kill was seen there.
 */
const SLACK_MS = 3_000;
/** After the last start, every pending lease is ready or failed within this. */
const SETTLE_MS = 60_000;
const MAX_OPEN_LEASES = 5;

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-crash-suite-'));
const running = new Set<AnsweringProcess>();
afterAll(async () => {
  for (const process of running) await stopCli(process, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The time from one kill of a serving broker to the first answer of a broker again (kills while starting inside). */
interface Outage {
  readonly killedAtMs: number;
  answeredAtMs: number;
  kills: number;
}

/** What the client asked for under one idempotency key, and the lease ids the broker answered with. */
interface Asked {
  readonly key: string;
  readonly count: number;
  readonly ids: Set<string>;
  answered: boolean;
}

async function crashLoop(clouds: 'embedded' | 'remote'): Promise<void> {
  const random = new Random(`${SEED}|${clouds}`);
  const base = join(dir, clouds);
  const dataDir = join(base, 'data');
  const scenarioFile = join(dir, 'scenario.json');
  writeFileSync(scenarioFile, JSON.stringify(FAST_AWS_SCENARIO));

  // The clouds: in the broker's process, or their own (with their state in a file, killed now and then too).
  let cloudsProcess: AnsweringProcess | undefined;
  const cloudsUrl = `http://127.0.0.1:${await freePort()}`;
  const cloudsArgs = [
    ...['clouds', 'serve', '--port', new URL(cloudsUrl).port, '--scenario', scenarioFile],
    ...['--state', join(base, 'clouds.json')],
  ];
  const startClouds = async () => {
    cloudsProcess = await spawnUntilAnswer(cloudsArgs, { url: cloudsUrl, probe: '/v1/vendors' });
    running.add(cloudsProcess);
  };
  if (clouds === 'remote') await startClouds();

  const url = `http://127.0.0.1:${await freePort()}`;
  const serveArgs = [
    ...[
      'serve',
      '--port',
      new URL(url).port,
      '--data-dir',
      dataDir,
      '--meter-heartbeat',
      `${HEARTBEAT_MS}ms`,
    ],
    ...(clouds === 'remote' ? ['--providers', cloudsUrl] : ['--scenario', scenarioFile]),
  ];
  let broker = await spawnUntilAnswer(serveArgs, { url });
  running.add(broker);
  const token = readFileSync(join(dataDir, 'operator-token'), 'utf8').trim();
  const call = async <T>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  expect((await call('PUT', '/v1/policy', FAST_POLICY)).status).toBe(200);

  // The client: requests (1–8 GPUs on one node), releases, and repeats what went unanswered with the same key.
  const asked: Asked[] = [];
  const leases = new Map<string, Lease>();
  const toRelease = new Set<string>();
  const releaseAsked = new Set<string>();
  let stopClient = false;
  let requests = 0;
  const client = (async () => {
    const rand = new Random(`${SEED}|${clouds}|client`);
    while (!stopClient) {
      await sleep(rand.int(100, 400));
      try {
        const unanswered = asked.find((a) => !a.answered);
        const open = [...leases.values()].filter((l) => l.status === 'ready' || l.status === 'pending');
        if (unanswered || (open.length < MAX_OPEN_LEASES && rand.chance(0.5))) {
          const a = unanswered ?? {
            key: `k-${asked.length}`,
            count: rand.int(1, 8),
            ids: new Set(),
            answered: false,
          };
          if (!unanswered) asked.push(a);
          requests++;
          const r = await call<Lease>('POST', '/v1/leases', {
            gpu: 'H100',
            count: a.count,
            placement: 'single-node',
            idempotencyKey: a.key,
          });
          if (r.status >= 200 && r.status < 300) {
            a.ids.add(r.body.id);
            a.answered = true;
            leases.set(r.body.id, r.body);
          }
        } else if (open.length > 0 && rand.chance(0.6)) {
          const id = rand.pick(open).id;
          toRelease.add(id);
          releaseAsked.add(id);
        }
        for (const id of [...toRelease]) {
          const r = await call('DELETE', `/v1/leases/${id}`);
          if (r.status >= 200 && r.status < 300) toRelease.delete(id);
        }
        for (const lease of open) {
          const r = await call<Lease>('GET', `/v1/leases/${lease.id}`);
          if (r.status === 200) leases.set(lease.id, r.body);
        }
      } catch {
        // The broker is down or starting (connection refused, reset, 503): try again in a moment.
      }
    }
  })();

  // The killer: SIGKILL at seeded moments, mostly while serving, sometimes while still starting.
  const outages: Outage[] = [];
  let kills = 0;
  let cloudKills = 0;
  let keptReady = 0;
  for (let round = 0; kills < KILLS; round++) {
    await sleep(random.int(500, 4_000));
    if (clouds === 'remote' && cloudsProcess && round % 3 === 1) {
      // The clouds die and come back; the broker keeps running and catches up with them.
      await stopCli(cloudsProcess, 'SIGKILL');
      running.delete(cloudsProcess);
      cloudKills++;
      await sleep(random.int(0, 2_000));
      await startClouds();
      continue;
    }
    // Leases ready (as the client last saw them, and not being released) must be ready after the restart.
    const readyBefore = [...leases.values()].filter((l) => l.status === 'ready' && !toRelease.has(l.id));
    const outage: Outage = { killedAtMs: Date.now(), answeredAtMs: 0, kills: 1 };
    await stopCli(broker, 'SIGKILL');
    running.delete(broker);
    kills++;
    // Some starts are cut short too: killed while recovering the database, resuming the meter or reconciling.
    while (kills < KILLS && random.chance(0.2)) {
      const starting = spawnServer(serveArgs, { url });
      await sleep(random.int(300, 3_000));
      const answeredAtMs = starting.answeredAtMs;
      const killedAtMs = Date.now();
      await stopCli(starting, 'SIGKILL');
      kills++;
      if (answeredAtMs === undefined) {
        outage.kills++;
        continue;
      }
      // It was up before the kill: that outage ended, and a new one begins.
      outages.push({ ...outage, answeredAtMs });
      Object.assign(outage, { killedAtMs, answeredAtMs: 0, kills: 1 });
    }
    broker = await spawnUntilAnswer(serveArgs, { url });
    running.add(broker);
    outage.answeredAtMs = broker.answeredAtMs;
    outages.push(outage);
    for (const lease of readyBefore) {
      const after = await call<Lease>('GET', `/v1/leases/${lease.id}`);
      // Released only if the client asked for it (since the snapshot: its releases go on while the broker is down).
      if (after.body.status !== 'released' || !releaseAsked.has(lease.id))
        expect(after.body.status, `seed ${SEED}, ${clouds}: lease ${lease.id} after a restart`).toBe('ready');
      keptReady++;
    }
  }

  // Settle: the client stops; what it left unanswered is repeated once more; every lease ends up ready or failed.
  stopClient = true;
  await client;
  for (const a of asked.filter((x) => !x.answered)) {
    const r = await call<Lease>('POST', '/v1/leases', {
      gpu: 'H100',
      count: a.count,
      placement: 'single-node',
      idempotencyKey: a.key,
    });
    expect(r.status).toBeLessThan(300);
    a.ids.add(r.body.id);
    a.answered = true;
  }
  for (const id of toRelease) await call('DELETE', `/v1/leases/${id}`);
  const settledBy = Date.now() + SETTLE_MS;
  let all: Lease[] = [];
  for (;;) {
    all = (await call<{ leases: Lease[] }>('GET', '/v1/leases')).body.leases;
    if (!all.some((l) => l.status === 'pending')) break;
    if (Date.now() > settledBy)
      throw new Error(
        `seed ${SEED}: leases still pending ${SETTLE_MS} ms after the last start: ${JSON.stringify(all.filter((l) => l.status === 'pending'))}`,
      );
    await sleep(250);
  }
  // Let a few ticks and heartbeats pass, then stop cleanly (intervals still open end now).
  await sleep(3_000);
  let cloudInstances: Instance[] | undefined;
  if (clouds === 'remote') cloudInstances = await cloudInventory<Instance>(cloudsUrl, true);
  expect(await stopCli(broker)).toBe(0);
  running.delete(broker);
  if (cloudsProcess) {
    await stopCli(cloudsProcess);
    running.delete(cloudsProcess);
  }

  const where = `seed ${SEED}, ${clouds} clouds`;
  expect(kills, where).toBeGreaterThanOrEqual(KILLS);
  expect(requests, where).toBeGreaterThan(KILLS);
  for (const lease of all)
    if (lease.status === 'failed') expect(lease.reason, `${where}: ${lease.id}`).toBeTruthy();
  // An idempotency key is one lease, however often it was repeated across crashes.
  for (const a of asked) expect(a.ids.size, `${where}: key ${a.key}`).toBe(1);

  const database = await openDatabase({ dataDir });
  try {
    const { db } = database;
    const fleetRows = await db.select().from(instancesTable);
    const actionRows = await db.select().from(actions);
    const leaseRows = await db.select().from(leasesTable);
    // The clouds' inventory, from their state file (embedded) or their API (remote), terminated ones included.
    if (clouds === 'embedded') {
      const state = readSimState(join(dataDir, SIM_CLOUDS_FILE));
      cloudInstances = (state?.vendors.aws?.instances ?? []).map((i) => ({ ...i }) as unknown as Instance);
    }
    const live = (cloudInstances ?? []).filter((i) => i.state !== 'terminated');
    const known = new Map(fleetRows.map((r) => [r.id, r]));
    const fleetId = (cloudInstances ?? []).find((i) => i.tags[FLEET_TAG])?.tags[FLEET_TAG];
    // No orphan: what the clouds hold of our fleet, the broker knows; what the broker holds, the clouds have.
    for (const instance of live.filter((i) => i.tags[FLEET_TAG] === fleetId))
      expect(known.has(instance.id), `${where}: orphan ${instance.id}`).toBe(true);
    const inClouds = new Set((cloudInstances ?? []).map((i) => i.id));
    for (const row of fleetRows.filter((r) => r.state !== 'terminated'))
      expect(inClouds.has(row.id), `${where}: ${row.id} is not in the clouds`).toBe(true);
    // No duplicate launch: an action's key got at most the instances it asked for.
    const byAction = new Map<string, number>();
    for (const instance of cloudInstances ?? []) {
      const action = instance.tags[ACTION_TAG];
      if (action) byAction.set(action, (byAction.get(action) ?? 0) + 1);
    }
    const actionCount = new Map(actionRows.map((a) => [a.id, a.count]));
    for (const [action, launched] of byAction)
      expect(launched, `${where}: action ${action}`).toBeLessThanOrEqual(actionCount.get(action) ?? 0);
    expect(byAction.size, where).toBeGreaterThan(0);
    // One lease row per key.
    const keys = leaseRows.map((l) => l.idempotencyKey).filter((k) => k !== null);
    expect(new Set(keys).size, where).toBe(keys.length);

    // Billing: never more GPUs at once than the lease holds; per outage, lost ≤ down + one heartbeat.
    const intervals = await new UsageStore(db).intervals();
    let checkedGaps = 0;
    for (const lease of leaseRows) {
      const spans = intervals
        .filter((u) => u.subject === lease.id)
        .map((u) => ({ startMs: u.startMs, endMs: u.observedEndMs, gpus: u.gpus, endedBy: u.endedBy }));
      expect(peakBilledGpus(spans), `${where}: lease ${lease.id}`).toBeLessThanOrEqual(lease.count);
      const gaps = gapsAfterCrashes(spans);
      for (const outage of outages) {
        const lost = gaps
          .filter((g) => g.toMs >= outage.killedAtMs && g.fromMs <= outage.answeredAtMs)
          .reduce((sum, g) => sum + (g.toMs - g.fromMs), 0);
        if (lost === 0) continue;
        checkedGaps++;
        const down = outage.answeredAtMs - outage.killedAtMs;
        expect(
          lost,
          `${where}: lease ${lease.id}, outage at ${outage.killedAtMs} (down ${down} ms)`,
        ).toBeLessThanOrEqual(down + HEARTBEAT_MS + SLACK_MS);
      }
    }
    expect(checkedGaps, `${where}: no ready lease lived through a crash`).toBeGreaterThan(0);
    expect(keptReady, where).toBeGreaterThan(0);
    process.stderr.write(
      `${where}: ${kills} broker kills (${outages.length} outages), ${cloudKills} clouds kills, ${requests} requests, ` +
        `${leaseRows.length} leases, ${fleetRows.length} instances, ${keptReady} leases ready across a restart, ` +
        `${checkedGaps} lease × outage gaps checked\n`,
    );
  } finally {
    await database.close();
  }
}

describe('crash suite', () => {
  it(
    `survives ${KILLS} SIGKILLs of the broker with the clouds in its process`,
    async () => {
      await crashLoop('embedded');
    },
    20 * 60_000,
  );

  it(
    `survives ${KILLS} SIGKILLs of the broker, and kills of the clouds' own process`,
    async () => {
      await crashLoop('remote');
    },
    20 * 60_000,
  );
});
