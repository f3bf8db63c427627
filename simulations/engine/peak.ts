/**
 * The workload's peak, for the static peak reservation: the most GPUs its requests hold at once if none waits,
 * on a one-second grid (a request holds its second of arrival through the second it ends, so the figure errs
 * high). Calls count as containers: ⌈calls running / concurrency⌉ × GPUs per container.
 */
import type { SimRequest } from '../workloads/workload.ts';

export function peakGpus(
  requests: Iterable<SimRequest>,
  windowMs: number,
  call: { readonly gpus: number; readonly concurrency: number },
): number {
  const seconds = Math.ceil(windowMs / 1000) + 1;
  const calls = new Int32Array(seconds + 1);
  const leases = new Int32Array(seconds + 1);
  for (const r of requests) {
    const from = Math.floor(r.atMs / 1000);
    if (from >= seconds) continue;
    const lengthMs = r.kind === 'call' ? r.serviceMs : r.durationMs;
    const to = Math.min(seconds, Math.floor((r.atMs + lengthMs) / 1000) + 1);
    if (r.kind === 'call') {
      calls[from] = (calls[from] as number) + 1;
      calls[to] = (calls[to] as number) - 1;
    } else {
      leases[from] = (leases[from] as number) + r.gpus;
      leases[to] = (leases[to] as number) - r.gpus;
    }
  }
  let running = 0;
  let leased = 0;
  let peak = 0;
  for (let s = 0; s < seconds; s++) {
    running += calls[s] as number;
    leased += leases[s] as number;
    peak = Math.max(peak, Math.ceil(running / call.concurrency) * call.gpus + leased);
  }
  return peak;
}
