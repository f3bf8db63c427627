/**
 * What a simulation produces, per policy: the headline figures (`gpubroker simulate --json` prints these, one
 * object per policy), time series sampled on the virtual clock for the charts, and the wait-time distribution.
 * The report (`simulations/report/`) renders only from these types.
 */

export interface WaitStats {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
}

/** Samples every `sampleMs` of simulated time; every array has one entry per element of `tMs`. */
export interface TimeSeries {
  readonly tMs: number[];
  /** Per GPU type: GPUs demanded (running + queued work) and GPUs provisioned (instances held × GPUs each). */
  readonly byGpu: Record<string, { readonly demandGpus: number[]; readonly provisionedGpus: number[] }>;
  /** Cumulative fleet cost, USD. */
  readonly costUsd: number[];
  /** Cumulative spot preemptions. */
  readonly preemptions: number[];
  /** GPUs demanded but not served at the sample time. */
  readonly unmetGpus: number[];
}

export interface PolicyResult {
  readonly seed: number;
  readonly workload: string;
  /** The policy's name (its file name without extension, or a built-in name). */
  readonly policy: string;
  /** What the fleet cost (instance time × price), USD. */
  readonly costUsd: number;
  readonly gpuHoursProvisioned: number;
  /** GPU-hours of containers and leases actually running. */
  readonly gpuHoursUsed: number;
  /** gpuHoursUsed / gpuHoursProvisioned. */
  readonly utilization: number;
  /** From a request's arrival to its start (call taken by a ready container, or lease ready), ms. */
  readonly waitMs: WaitStats;
  /** How many waits the percentiles are made of. */
  readonly waitSamples: number;
  /** Set when the percentiles rest on fewer than MIN_WAIT_SAMPLES waits: a difference may be noise. */
  readonly caveat?: string;
  /** On the cost versus p99-wait Pareto frontier of the policies compared (no other is cheaper and faster). */
  readonly paretoFrontier: boolean;
  readonly coldStarts: number;
  readonly preemptions: number;
  /** GPU-hours of demand that waited for capacity. */
  readonly unmetGpuHours: number;
  /** Wall-clock time of this run, ms. */
  readonly wallMs: number;
  readonly requests: number;
  /** Share of wall time in the solver, the runtime and the meter (0..1 each). */
  readonly wallShare: { readonly solver: number; readonly runtime: number; readonly meter: number };
  readonly series: TimeSeries;
  /** Points of the empirical CDF of wait times (ms, fraction ≤), at most a few hundred. */
  readonly waitCdf: readonly { readonly ms: number; readonly fraction: number }[];
  /** Invariants checked while running, and how many times each was checked. */
  readonly invariants: Readonly<Record<string, { readonly checks: number; readonly violations: number }>>;
}

/** Fewer waits than this and percentiles carry a caveat. */
export const MIN_WAIT_SAMPLES = 1_000;

/** The caveat of percentiles from `samples` waits, or undefined when there are enough. */
export function waitCaveat(samples: number): string | undefined {
  return samples < MIN_WAIT_SAMPLES
    ? `wait percentiles from ${samples} waits (fewer than ${MIN_WAIT_SAMPLES.toLocaleString('en-US')}): differences may be noise`
    : undefined;
}

export interface SimulationResults {
  readonly workload: string;
  readonly seed: number;
  readonly hours: number;
  readonly scale: number;
  readonly startMs: number;
  readonly results: PolicyResult[];
}
