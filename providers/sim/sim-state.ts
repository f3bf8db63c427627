/**
 * Durable simulated clouds: the state of one set of simulated clouds (`createSimClouds`) as a snapshot file, so
 * that the clouds outlive the process they run in as real ones do. The broker's embedded default keeps them in
 * its data directory (`<data-dir>/sim-clouds.json`) and `gpubroker clouds serve --state FILE` in a file of its
 * own; with no file (simulations, most tests) nothing is written.
 *
 * Why a snapshot file and not rows in the broker's database: a cloud is not part of the broker. Its state must not
 * commit or roll back with the broker's transactions (the broker has to reconcile with it after a crash, as with
 * a real cloud), `clouds serve` has no database at all, and the clouds are made before the broker's database is
 * opened. The inventory is small (hundreds to thousands of instances), so the whole of it is written each time:
 * no log to compact, and a file that is always one consistent state.
 *
 * When: every change of state (a call that launched or stopped instances, a boot, a reclaim, a trace drop, a
 * scenario event, the API throttle's tokens) marks the set dirty; the snapshot is written once at the end of the
 * current synchronous turn (a microtask), before anyone who heard of the change can act on it. A call that
 * changed the inventory (`provision`, `terminate`) writes before it returns, as a cloud's API answers only once
 * the change is durable. Written atomically: a temporary file, fsync, rename over the old one, fsync of the
 * directory; a crash leaves either the old snapshot or the new one, never a torn one.
 *
 * What: everything that is not derived from the scenario, the catalog and the time: each vendor's instances (and
 * the ones its idempotency keys still answer with), keys, pending timers (with their order), the draw counts of
 * its generators, active outages, prices, the throttle's bucket, spot pools' carried fractions; and the set's
 * start time (scenario times and trace positions count from it). Restoring rebuilds the set from it and replays
 * the timers that fell due while it was down, each at its own time (see sim-timers.ts): the restored clouds then
 * behave exactly as clouds that never stopped, given the same seed and the same calls (`sim-state.test.ts`).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { DataFileError } from '../../lib/errors.ts';
import type { InstanceState, Tags, TerminationReason } from '../provider.ts';
import type { SimScenario } from './scenario.ts';

export const SIM_STATE_FORMAT = 'gpubroker-sim-clouds';
export const SIM_STATE_VERSION = 1;

/** A timer still to fire: when, and its place in the order the set's timers were set. */
export interface SavedTimer {
  readonly atMs: number;
  readonly seq: number;
}

export interface SavedInstance {
  readonly id: string;
  readonly offeringId: string;
  readonly zone: string;
  readonly tags: Tags;
  readonly idempotencyKey: string;
  readonly microsPerHour: number;
  readonly launchedAtMs: number;
  readonly state: InstanceState;
  readonly runningAtMs?: number;
  readonly terminatedAtMs?: number;
  readonly terminationReason?: TerminationReason;
  readonly interruptAtMs?: number;
  /** Still in the inventory (`list`); false: only an idempotency key remembers it. */
  readonly listed: boolean;
  /** Its one pending transition: the boot (and whether it fails), or the end (shutdown or reclaim). */
  readonly next?: SavedTimer &
    (
      | { readonly kind: 'boot'; readonly fails: boolean }
      | { readonly kind: 'end'; readonly reason: TerminationReason }
    );
}

export interface SavedPool {
  /** `offeringId@zone`. */
  readonly key: string;
  readonly carry: number;
  readonly drop?: SavedTimer & { readonly dropAtMs: number; readonly alive: number; readonly lost: number };
}

export interface SavedVendor {
  readonly draws: { delays: number; failures: number; ids: number; victims: number };
  readonly bucket: { tokens: number; updatedAtMs: number } | null;
  readonly prices: readonly (readonly [string, number])[];
  /** Indexes into the scenario's outages of those in force. */
  readonly outages: readonly number[];
  /** Scenario events still to come (`outage-start:N`, `outage-end:N`, `price:N`). */
  readonly scenarioTimers: readonly (SavedTimer & { readonly id: string })[];
  /** In inventory order, then the ones only keys remember. */
  readonly instances: readonly SavedInstance[];
  readonly idempotency: readonly (readonly [
    key: string,
    fingerprint: string,
    instanceIds: readonly string[],
  ])[];
  readonly pools: readonly SavedPool[];
}

export interface SimCloudsSnapshot {
  readonly format: typeof SIM_STATE_FORMAT;
  readonly version: typeof SIM_STATE_VERSION;
  /** The scenario the clouds run (restoring under another one is refused). */
  readonly scenario: SimScenario;
  /** Clock time the clouds started: scenario times and trace positions count from it. */
  readonly startMs: number;
  /** Clock time of the snapshot. */
  readonly savedAtMs: number;
  readonly vendors: Readonly<Record<string, SavedVendor>>;
}

/** The saved state in `file`, or undefined when there is none yet. */
export function readSimState(file: string): SimCloudsSnapshot | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DataFileError(
      file,
      undefined,
      undefined,
      `cannot read the simulated clouds' state: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  let parsed: Partial<SimCloudsSnapshot>;
  try {
    parsed = JSON.parse(text) as Partial<SimCloudsSnapshot>;
  } catch (error) {
    throw new DataFileError(file, undefined, undefined, `not JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (parsed.format !== SIM_STATE_FORMAT)
    throw new DataFileError(
      file,
      undefined,
      'format',
      `not a simulated clouds' state (format "${parsed.format}")`,
    );
  if (parsed.version !== SIM_STATE_VERSION)
    throw new DataFileError(
      file,
      undefined,
      'version',
      `version ${parsed.version}; this gpubroker reads ${SIM_STATE_VERSION}`,
    );
  return parsed as SimCloudsSnapshot;
}

/** Writes `snapshot` to `file` atomically and durably (temporary file, fsync, rename, fsync of the directory). */
export function writeSimState(file: string, snapshot: SimCloudsSnapshot): void {
  const temporary = `${file}.partial`;
  const fd = openSync(temporary, 'w', 0o600);
  try {
    writeFileSync(fd, JSON.stringify(snapshot));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
  const dir = openSync(dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** What a simulated cloud tells of its changes (see the module comment for when it writes). */
export interface SimPersistence {
  /** The state changed; `now`: write before returning (a call changed the inventory). */
  changed(now?: boolean): void;
}

/** Writes the set's snapshot, at most once per synchronous turn unless asked to write at once. */
export class SimStateWriter implements SimPersistence {
  private dirty = false;
  private queued = false;
  private stopped = false;
  /** Snapshots written (for tests and the benchmark). */
  writes = 0;

  constructor(
    private readonly file: string,
    private readonly snapshot: () => SimCloudsSnapshot,
  ) {}

  changed(now = false): void {
    if (this.stopped) return;
    this.dirty = true;
    if (now) {
      this.flush();
      return;
    }
    if (this.queued) return;
    this.queued = true;
    queueMicrotask(() => {
      this.queued = false;
      this.flush();
    });
  }

  /** Writes now if anything changed since the last write. */
  flush(): void {
    if (!this.dirty || this.stopped) return;
    this.dirty = false;
    writeSimState(this.file, this.snapshot());
    this.writes++;
  }

  /** Writes what is pending and writes nothing more (the clouds are closing). */
  stop(): void {
    this.flush();
    this.stopped = true;
  }

  /** Writes nothing more, not even what is pending (a crash, in tests). */
  abandon(): void {
    this.stopped = true;
  }
}
