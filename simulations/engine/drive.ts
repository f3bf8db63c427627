/**
 * The discrete-event loop. Time jumps from one pending timer to the next (`VirtualClock.nextTimerAt`), never in
 * small steps: every timer due at that moment fires (the runtime's 1 s tick, a call ending, an instance booting,
 * the control loop's schedule, the next arrival), then the work they started settles before time moves again.
 * Nothing here reads the wall clock, so a run is a function of its inputs and seed.
 *
 * Settling a moment: what the runtime does between two timers runs on short promise chains, which a few rounds of
 * microtasks finish (measured over a day of the ×100 trace: 97 % of moments are quiet after one round, and every
 * chain that ran past four was the database's, a provider event's or a tick's); the database's operations (PGlite),
 * the handling of a provider's events and the control loop's ticks run on longer ones. So a moment gets
 * `MICROTASK_ROUNDS` rounds, then whole event-loop turns (`setImmediate`), which run every chain to its end, while
 * `pending()` (operations in flight, events not handled yet) or `busy()` (a tick) says work is left. Most of a long
 * run's millions of moments (a call arriving, a call ending) need no turn: a turn each was a third of a simulation's
 * wall time. Without `pending`, every moment gets a turn, as before. Which moments get turns depends on the run
 * alone (not on wall time), so a run stays a function of its inputs; and because the long chains end within their
 * moment whatever their length, a change to how many steps some async code takes moves no result.
 */
import type { VirtualClock } from '../../lib/clock.ts';

export interface DriveOptions {
  /** Called after each moment has settled; when it returns true (it started work), that work settles too. */
  readonly afterStep?: () => boolean;
  /** Work that must finish before time moves (checked after settling; a few more turns are given to it). */
  readonly busy?: () => boolean;
  /**
   * Work in flight that settles through event-loop turns or chains longer than a moment's microtask rounds (the
   * database's operations, provider events not handled yet): while it says so, the moment gets turns (at most
   * MAX_EXTRA_TURNS). Absent: every moment gets a turn.
   */
  readonly pending?: () => boolean;
}

/** How many extra macrotask turns `busy()` work is given before time moves anyway (it may wait on the clock). */
const MAX_EXTRA_TURNS = 1_000;
/**
 * Rounds of microtasks a moment's work gets before `pending` is asked, and each of its timers' continuations before
 * the next timer due at the same moment fires (the runtime's chains take one or two).
 */
const MICROTASK_ROUNDS = 4;
/** Moments between turns given anyway, so that output is written and signals are heard during a long run. */
const TURN_EVERY_MOMENTS = 1_024;

export async function driveUntil(
  clock: VirtualClock,
  untilMs: number,
  options: DriveOptions = {},
): Promise<void> {
  const { pending } = options;
  let moments = 0;
  const settleMoment = async (): Promise<void> => {
    if (!pending) return settle();
    for (let round = 0; round < MICROTASK_ROUNDS; round++) await undefined;
    if (++moments % TURN_EVERY_MOMENTS !== 0 && !pending()) return;
    let turns = 0;
    do await settle();
    while (pending() && ++turns < MAX_EXTRA_TURNS);
  };
  for (;;) {
    const next = clock.nextTimerAt();
    if (next === undefined || next > untilMs) break;
    // The timers due at this moment, one at a time: each one's continuations run before the next fires.
    while (clock.fireNext(next)) for (let round = 0; round < MICROTASK_ROUNDS; round++) await undefined;
    await settleMoment();
    if (options.busy) for (let turn = 0; turn < MAX_EXTRA_TURNS && options.busy(); turn++) await settle();
    if (options.afterStep?.()) await settleMoment();
  }
  if (clock.now() < untilMs) await clock.advanceTo(untilMs);
  await settle();
}

/** Resolves after every promise chain now queued has run to its end (one macrotask turn). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
