/**
 * The buffer curve of a GPU type: for warm buffers of 0..max GPUs, what the fleet would cost per hour and how long a
 * request for one GPU of that type would wait.
 *
 * Each point is a what-if (`ControlLoop.whatIf`): the policy in force with the type's buffer set to that many GPUs
 * (fraction 0; per region group, as `buffer.perGpu` counts it), planned from the current fleet and forecast by the
 * loop's own path. Its wait is the M/G/∞ estimate of wait-model.ts with
 *  - load: the forecast GPUs of the type in the first period (all region groups and gang sizes together; machines
 *    of your own netted out, as the planner counts them). The forecast is max(recent peak, smoothed level) ×
 *    (1 + margin), at or above the mean, so the estimate errs towards waiting;
 *  - held: the GPUs of the type the point's plan holds in its first period (booting ones included);
 *  - boot: the policy's `provisioningMinutes`.
 * A request is taken to fit any held GPU of its type: region groups and gangs are not told apart.
 */
import { ValidationError } from '../lib/errors.ts';
import { microsToUsd, usdToMicros } from '../lib/money.ts';
import type { WhatIf } from './loop.ts';
import type { BrokerPolicy } from './policy.ts';
import { expectedWaitMs, waitProbability } from './wait-model.ts';

export interface BufferPoint {
  readonly bufferGpus: number;
  readonly usdPerHour: number;
  readonly heldGpus: number;
  readonly waitProbability: number;
  readonly expectedWaitMs: number;
  /** The solve's status; `idle` when there was nothing to plan. */
  readonly status: string;
}

export interface BufferCurve {
  readonly gpu: string;
  readonly loadGpus: number;
  readonly bootMs: number;
  readonly points: BufferPoint[];
}

export async function bufferCurve(o: {
  readonly whatIf: (policy: BrokerPolicy) => Promise<WhatIf>;
  readonly policy: BrokerPolicy;
  readonly gpuTypes: readonly string[];
  readonly gpu: string;
  readonly max: number;
}): Promise<BufferCurve> {
  const { policy, gpu } = o;
  if (!o.gpuTypes.includes(gpu))
    throw new ValidationError(
      'gpu',
      `no offering sells "${gpu}"; on sale: ${[...o.gpuTypes].sort().join(', ')}`,
    );
  const bootMs = Math.round(policy.provisioningMinutes * 60_000);
  let loadGpus = 0;
  const points: BufferPoint[] = [];
  // One after the other: each is a solve, and a solve takes the thread while it runs.
  for (let bufferGpus = 0; bufferGpus <= o.max; bufferGpus++) {
    const { demand, plan } = await o.whatIf({
      ...policy,
      buffer: {
        ...policy.buffer,
        perGpu: { ...policy.buffer.perGpu, [gpu]: { gpus: bufferGpus, fraction: 0 } },
      },
    });
    // The same at every point: the buffer adds classes of zero demand only.
    loadGpus = demand.filter((d) => d.gpu === gpu).reduce((sum, d) => sum + (d.gpus[0] ?? 0), 0);
    const heldGpus = (plan?.pools ?? [])
      .filter((p) => p.gpu === gpu)
      .reduce((sum, p) => sum + p.count * p.gpusPerInstance, 0);
    points.push({
      bufferGpus,
      usdPerHour: microsToUsd(usdToMicros(plan?.cost.usdPerHour ?? 0)),
      heldGpus,
      waitProbability: waitProbability(loadGpus, heldGpus),
      expectedWaitMs: expectedWaitMs(loadGpus, heldGpus, bootMs),
      status: plan?.status ?? 'idle',
    });
  }
  return { gpu, loadGpus, bootMs, points };
}
