/**
 * The discrete-event loop. Time jumps from one pending timer to the next (`VirtualClock.nextTimerAt`), never in
 * small steps: every timer due at that moment fires (the runtime's 1 s tick, a call ending, an instance booting,
 * the control loop's schedule, the next arrival), then the work they started settles before time moves again.
 * Everything the broker does between two timers (database writes on PGlite, solver calls) runs on promises, so
 * one macrotask turn (`setImmediate`) drains it; `busy()` can hold time still for longer (a tick in flight).
 * Nothing here reads the wall clock, so a run is a function of its inputs and seed.
 */
import type { VirtualClock } from '../../lib/clock.ts';

export interface DriveOptions {
  /** Called after each moment has settled; when it returns true (it started work), that work settles too. */
  readonly afterStep?: () => boolean;
  /** Work that must finish before time moves (checked after settling; a few more turns are given to it). */
  readonly busy?: () => boolean;
}

/** How many extra macrotask turns `busy()` work is given before time moves anyway (it may wait on the clock). */
const MAX_EXTRA_TURNS = 1_000;

export async function driveUntil(
  clock: VirtualClock,
  untilMs: number,
  options: DriveOptions = {},
): Promise<void> {
  for (;;) {
    const next = clock.nextTimerAt();
    if (next === undefined || next > untilMs) break;
    await clock.advanceTo(next, { leaveLast: true });
    await settle();
    if (options.busy) for (let turn = 0; turn < MAX_EXTRA_TURNS && options.busy(); turn++) await settle();
    if (options.afterStep?.()) await settle();
  }
  if (clock.now() < untilMs) await clock.advanceTo(untilMs);
  await settle();
}

/** Resolves after every promise chain now queued has run to its end (one macrotask turn). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
