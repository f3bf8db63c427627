/**
 * The embedded default: one simulated provider per catalog vendor (aws, gcp, azure), sharing one scenario, one
 * clock and one spot replay. `npm start` buys from these; tests and simulations build their own with a scenario.
 *
 * With a `stateFile`, the clouds are durable (see sim-state.ts): their state is written there on every change and,
 * when the file exists, the clouds start from it, with the time that passed since caught up by their own rules.
 */
import type { Clock } from '../../lib/clock.ts';
import { DataFileError } from '../../lib/errors.ts';
import { loadCatalog } from '../catalog/load-catalog.ts';
import type { Offering } from '../catalog/offering.ts';
import { type SimScenario, type SimScenarioInput, simScenario } from './scenario.ts';
import { type PendingTimer, SimProvider } from './sim-provider.ts';
import {
  readSimState,
  SIM_STATE_FORMAT,
  SIM_STATE_VERSION,
  type SimCloudsSnapshot,
  SimStateWriter,
} from './sim-state.ts';
import { SimTimers } from './sim-timers.ts';
import { SpotReplay } from './spot-replay.ts';

/** The simulated clouds' state file in a broker's data directory. */
export const SIM_CLOUDS_FILE = 'sim-clouds.json';

export interface SimCloudsOptions {
  readonly clock: Clock;
  /** A validated scenario or its input (validated here); default: `defaultScenario`. */
  readonly scenario?: SimScenario | SimScenarioInput;
  /**
   * Without `scenario`: the scenario of clouds that start empty (default `{}`); clouds restored from `stateFile`
   * keep the scenario they were started with.
   */
  readonly defaultScenario?: SimScenario;
  /** Default: the bundled catalog. */
  readonly offerings?: readonly Offering[];
  /**
   * Where the clouds' state lives (e.g. `<data-dir>/sim-clouds.json`): read on start when it exists, written on
   * every change. Default: nowhere (the clouds live and die with this process).
   */
  readonly stateFile?: string;
}

/** The simulated clouds of one scenario; `SimClouds.writer` is set when they are durable. */
export type SimClouds = SimProvider[] & { readonly writer?: SimStateWriter };

export function createSimClouds(options: SimCloudsOptions): SimClouds {
  const offerings = options.offerings ?? loadCatalog();
  const { stateFile } = options;
  const saved = stateFile ? readSimState(stateFile) : undefined;
  const scenario =
    options.scenario !== undefined
      ? simScenario(options.scenario as SimScenarioInput)
      : saved
        ? simScenario(saved.scenario as SimScenarioInput)
        : (options.defaultScenario ?? simScenario({}));
  if (stateFile && saved && JSON.stringify(saved.scenario) !== JSON.stringify(scenario))
    throw new DataFileError(
      stateFile,
      undefined,
      'scenario',
      'the simulated clouds there run another scenario; start them with the same one, or move the file away to start empty clouds',
    );
  const timers = new SimTimers(options.clock);
  const startMs = saved?.startMs ?? options.clock.now();
  const spotReplay = new SpotReplay(scenario, startMs);
  const vendors = scenario.vendors ?? [...new Set(offerings.map((o) => o.vendor))].sort();
  const writer = stateFile
    ? new SimStateWriter(stateFile, () => snapshotOf(scenario, startMs, timers, clouds))
    : undefined;
  // Restoring writes nothing: what the replay changes follows from the file and the clock, and a start that fails
  // later (a damaged database) must leave the directory as it found it. Changes count once the clouds are up.
  let recording = false;
  const persistence = { changed: (now?: boolean) => (recording ? writer?.changed(now) : undefined) };
  if (saved) timers.beginReplay(saved.savedAtMs);
  const clouds: SimProvider[] = vendors.map(
    (vendor) =>
      new SimProvider({
        vendor,
        clock: options.clock,
        offerings,
        scenario,
        spotReplay,
        startMs,
        timers,
        ...(writer ? { persistence } : {}),
        restoring: saved !== undefined,
      }),
  );
  if (saved && stateFile) {
    const pending: PendingTimer[] = [];
    for (const cloud of clouds) {
      const state = saved.vendors[cloud.vendor];
      if (!state)
        throw new DataFileError(stateFile, undefined, 'vendors', `${cloud.vendor} is not saved there`);
      try {
        pending.push(...cloud.restoreState(state));
      } catch (error) {
        throw new DataFileError(stateFile, undefined, `vendors.${cloud.vendor}`, (error as Error).message, {
          cause: error,
        });
      }
    }
    // Every vendor's timers in the order they were first set, so that those due together fire as they would have.
    pending.sort((a, b) => a.seq - b.seq);
    for (const timer of pending) timer.arm();
    timers.endReplay(options.clock.now());
  }
  recording = true;
  return Object.assign(clouds, writer ? { writer } : {});
}

function snapshotOf(
  scenario: SimScenario,
  startMs: number,
  timers: SimTimers,
  clouds: readonly SimProvider[],
): SimCloudsSnapshot {
  return {
    format: SIM_STATE_FORMAT,
    version: SIM_STATE_VERSION,
    scenario,
    startMs,
    savedAtMs: timers.now(),
    vendors: Object.fromEntries(clouds.map((cloud) => [cloud.vendor, cloud.snapshotState()])),
  };
}
