/** The broker the fuzz runs against: in this process, in-memory PGlite, the simulated clouds, no schedule. */
import { type RunningServer, startServer } from '../../broker/server.ts';
import { simScenario } from '../../providers/sim/scenario.ts';

/**
 * Instances take `bootMs` to boot (default an hour): within a run none becomes ready, so no container process
 * starts; leases stay pending, calls queued. A shorter boot lets leases become ready and containers start.
 */
export function startFuzzServer(seed: number, bootMs = 3_600_000): Promise<RunningServer> {
  const delay = { kind: 'fixed' as const, ms: bootMs };
  const settings = { provisioningDelay: { 'on-demand': delay, spot: delay, reserved: delay } };
  return startServer({
    port: 0,
    schedule: false,
    seed,
    scenario: simScenario({ seed, settings: { aws: settings, gcp: settings, azure: settings } }),
  });
}
