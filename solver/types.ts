import type { Offering } from '../providers/catalog/offering.ts';
import type { PlanningPolicy } from './policy.ts';
import type { WarmState } from './warm.ts';

/** GPUs needed for one (GPU type, region group, gang size), one number per planning period. */
export interface DemandClass {
  gpu: string;
  regionGroup: string;
  /** GPUs that must sit on one instance; 1 for independent GPUs. */
  gangSize: number;
  /** GPUs needed in each period (a multiple of gangSize). */
  gpus: number[];
}

/** Instances of one offering held now. */
export interface FleetPool {
  offeringId: string;
  count: number;
  /** Ages in ms of the instances (for the minimum-lifetime rule); missing means all are old enough to stop. */
  instanceAgesMs?: number[];
}

/**
 * A cap on GPUs per vendor × region, optionally for one GPU type and one capacity type only (clouds count spot
 * GPUs apart from on-demand ones: GCP's PREEMPTIBLE_NVIDIA_*_GPUS, AWS's spot vCPU limits).
 */
export interface Quota {
  vendor: string;
  region: string;
  gpu?: string;
  capacityType?: Offering['capacityType'];
  maxGpus: number;
}

/** Whether an offering's GPUs count against a quota. */
export function quotaCovers(q: Quota, o: Offering): boolean {
  return (
    o.vendor === q.vendor &&
    o.region === q.region &&
    (q.gpu === undefined || o.gpu === q.gpu) &&
    (q.capacityType === undefined || o.capacityType === q.capacityType)
  );
}

/** A quota's name in row names and messages: `aws/us-east-1`, `gcp/us-west4 L4 spot`. */
export function quotaLabel(q: Quota): string {
  return [`${q.vendor}/${q.region}`, q.gpu, q.capacityType].filter(Boolean).join(' ');
}

/** Capacity reserved in advance (already paid): costs nothing up to `count` instances. */
export interface Reservation {
  /** The on-demand offering the reservation is for. */
  offeringId: string;
  count: number;
}

export interface PlanInput {
  offerings: readonly Offering[];
  demand: readonly DemandClass[];
  policy: PlanningPolicy;
  fleet?: readonly FleetPool[];
  /** Offerings that cannot be bought now (stock-outs): capped at their current count. */
  unavailable?: readonly string[];
  quotas?: readonly Quota[];
  reservations?: readonly Reservation[];
  /**
   * The plan this planner returned at the previous tick, passed back as it was: its solve restarts from what that
   * one kept (solver/warm.ts). Optional; a plan for a model of another shape (other offerings after reduction,
   * demand classes, quotas, periods or rules) is ignored.
   */
  previous?: Plan;
  /**
   * Worker threads the solve may use for its block MIPs (capped at the cores, at most 4). Default 1: all on this
   * thread, which a simulation on a virtual clock needs (its ticks must settle within macrotask turns); a broker on
   * the real clock, the CLI and the benchmark pass more.
   */
  threads?: number;
}

export type PlanStatus = 'optimal' | 'feasible' | 'fallback' | 'infeasible';
export type BackendName = 'highs' | 'glpk' | 'greedy';

export interface PlanPool {
  offeringId: string;
  vendor: string;
  region: string;
  regionGroup: string;
  instanceType: string;
  gpu: string;
  gpusPerInstance: number;
  capacityType: Offering['capacityType'];
  count: number;
  /** Spend of the pool per hour (0 for reserved capacity). */
  usdPerHour: number;
}

export interface PlanAction {
  offeringId: string;
  provision: number;
  terminate: number;
}

export interface UnmetDemand {
  gpu: string;
  regionGroup: string;
  gangSize: number;
  /** Unmet GPUs per period. */
  gpus: number[];
}

export interface ExplanationLine {
  /** Constraint name as in the formulation and the LP file. */
  constraint: string;
  kind: 'coverage' | 'gang' | 'quota' | 'spot' | 'spread' | 'budget' | 'churn' | 'lifetime';
  /** Marginal cost from the LP relaxation in USD per unit of the row per hour (for coverage: per GPU-hour). */
  marginalUsdPerHour: number;
  /** Whether the row is tight at the returned plan. */
  bindingAtPlan: boolean;
  text: string;
}

export interface Plan {
  status: PlanStatus;
  backend: BackendName;
  /** Why the greedy fallback was used, when it was. */
  fallbackReason?: string;
  /** Objective of the exported LP model (USD over the horizon, penalties included) at the returned solution. */
  objective: number;
  /** Lower bound on the objective (MIP dual bound or LP relaxation). */
  bound: number;
  /** (objective − bound) / max(|objective|, 1e-9). */
  gap: number;
  solveMs: number;
  periodMinutes: number;
  periods: number;
  /** Target instance counts per offering per period (offerings with any non-zero count). */
  targets: { offeringId: string; counts: number[] }[];
  /** What to do now: first-period changes against the current fleet. */
  actions: PlanAction[];
  /** Pools to hold in the first period. */
  pools: PlanPool[];
  cost: {
    /** Spend per hour of the first period's pools. */
    usdPerHour: number;
    instancesUsd: number;
    startupUsd: number;
    interruptionUsd: number;
    unmetPenaltyUsd: number;
    bufferPenaltyUsd: number;
  };
  unmet: UnmetDemand[];
  /** Unmet GPUs in the first period, over all demand classes. */
  unmetGpus: number;
  /** Warm-buffer GPUs not held in the first period. */
  bufferShortfallGpus: number;
  explanation: ExplanationLine[];
  model: {
    offerings: number;
    offeringsAfterReduction: number;
    variables: number;
    integers: number;
    constraints: number;
  };
  /**
   * What the solve keeps for the next plan (`PlanInput.previous`). Not enumerable: never serialised, stored or
   * compared with the plan.
   */
  readonly warmStart?: WarmState;
}

export type { PlanningPolicy };
