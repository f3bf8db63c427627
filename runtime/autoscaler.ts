/**
 * Per-function autoscaling, pure. The desired number of containers is what the inputs need plus the buffer,
 * within [minContainers, maxContainers]:
 *   desired = clamp(ceil((inFlight + queued) / concurrency) + bufferContainers, minContainers, maxContainers)
 * Scaling up is immediate; scaling down waits: a container stops only after it has been idle for the scale-down
 * window, and only while the count stays at or above the desired one.
 */

export interface Load {
  readonly inFlight: number;
  readonly queued: number;
  /** Inputs one container takes at once: its `concurrency`, plus those that may wait next to it (see Runtime). */
  readonly concurrency: number;
  readonly bufferContainers: number;
  readonly minContainers: number;
  readonly maxContainers: number;
}

export function desiredContainers(load: Load): number {
  const needed = Math.ceil((load.inFlight + load.queued) / load.concurrency) + load.bufferContainers;
  return Math.max(load.minContainers, Math.min(load.maxContainers, needed));
}

export interface IdleContainer {
  readonly containerId: string;
  /** Since when it has had no input; undefined while it is busy or not ready yet. */
  readonly idleSinceMs: number | undefined;
}

/**
 * The containers to stop now: of `live` (every container that counts towards the function's size), those idle for
 * at least `scaledownWindowMs`, longest idle first, as long as the count stays ≥ `desired`.
 */
export function containersToStop(
  live: readonly IdleContainer[],
  desired: number,
  nowMs: number,
  scaledownWindowMs: number,
): string[] {
  const surplus = live.length - desired;
  if (surplus <= 0) return [];
  return live
    .filter((c) => c.idleSinceMs !== undefined && nowMs - c.idleSinceMs >= scaledownWindowMs)
    .sort(
      (a, b) =>
        (a.idleSinceMs as number) - (b.idleSinceMs as number) ||
        (a.containerId < b.containerId ? -1 : a.containerId > b.containerId ? 1 : 0),
    )
    .slice(0, surplus)
    .map((c) => c.containerId);
}
