/**
 * Runs that ended, whose apps are kept warm for a while. When `gpubroker run` ends, its app does not stop at once:
 * it stops once its containers' scale-down window has passed (the longest of its functions', 60 s by default),
 * unless it is deployed again before. So a second run of the same code, which deploys the same app with the same
 * bundle, finds its containers up and ready, as a deployed app would; and an app nobody runs again still goes,
 * with its containers, when they would have scaled to zero anyway. A run interrupted with Ctrl-C stops its app at
 * once, as before.
 *
 * The stop is a timer of this broker process: after a restart an ended run's app is any ephemeral app (dropped at a
 * restart once untouched for an hour, see BrokerCore.redeployApps), and its containers scale to zero meanwhile.
 */
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import type { Runtime } from '../../runtime/runtime.ts';

export interface EndedRunsOptions {
  readonly clock: Clock;
  readonly runtime: Runtime;
  /** Stops the app for good (its stored row and its containers). */
  readonly stop: (tenantId: string, app: string) => Promise<void>;
  readonly onError?: (error: unknown, app: string) => void;
}

export class EndedRuns {
  private readonly pending = new Map<string, TimerHandle>();

  constructor(private readonly o: EndedRunsOptions) {}

  /**
   * The run of `app` ended: it stops once its scale-down window has passed, unless deployed again before. Returns
   * when it will stop (undefined when there is no such app).
   */
  ended(tenantId: string, app: string): number | undefined {
    const { runtime, clock } = this.o;
    const view = runtime.getApp(tenantId, app);
    const windowMs = runtime.scaledownWindowMs(tenantId, app);
    if (!view || windowMs === undefined) return undefined;
    const key = `${tenantId}\u0000${app}`;
    this.pending.get(key)?.cancel();
    const atMs = clock.now() + windowMs;
    this.pending.set(
      key,
      clock.setTimer(atMs, () => {
        this.pending.delete(key);
        // Deployed again since (a new run, or a deploy to stay): it is theirs now.
        if (runtime.getApp(tenantId, app)?.version !== view.version) return;
        this.o.stop(tenantId, app).catch((error: unknown) => this.o.onError?.(error, app));
      }),
    );
    return atMs;
  }

  /** The app was deployed again or stopped: its ended run no longer stops it. */
  forget(tenantId: string, app: string): void {
    const key = `${tenantId}\u0000${app}`;
    this.pending.get(key)?.cancel();
    this.pending.delete(key);
  }

  close(): void {
    for (const timer of this.pending.values()) timer.cancel();
    this.pending.clear();
  }
}
