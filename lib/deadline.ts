/** A step that must finish in time: start-up waits on DNS, remote providers and disks that may never answer. */
import { type Clock, RealClock } from './clock.ts';

/**
 * Resolves as `work` does, or rejects with `onTimeout()` once `ms` have passed on `clock` (wall time by default:
 * what may hang is the outside world). The work itself is not cancelled; pass it an AbortSignal for that.
 */
export function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  onTimeout: () => Error,
  clock: Clock = new RealClock(),
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimer(clock.now() + ms, () => reject(onTimeout()));
    work.then(
      (value) => {
        timer.cancel();
        resolve(value);
      },
      (error: unknown) => {
        timer.cancel();
        reject(error);
      },
    );
  });
}
