/**
 * What a simulation measures about its requests, seen from the simulated executor and the lease driver rather
 * than from the broker's own bookkeeping: waits, cold starts, calls running and waiting, containers starting, and
 * unmet demand integrated over time:
 *   unmet GPUs(t) = max(0, calls waiting − containers cold-starting) × GPUs per call + GPUs of leases pending
 * (calls for which no container exists yet, and leases no free GPUs could serve). Every change point calls
 * `touch()` first, so the integral is exact between them.
 */
import type { Clock } from '../../lib/clock.ts';
import type { ContainerSpec } from '../../runtime/executor/executor.ts';
import type { SimCallArgs, SimExecutorListener } from '../sim-executor.ts';
import { WaitRecorder } from './wait-stats.ts';

export interface ContainerRecord {
  readonly instanceId: string;
  readonly gpuIndices: readonly number[];
  readonly startMs: number;
  endMs: number | undefined;
  ready: boolean;
}

export interface LeaseGpus {
  /** GPUs of leases waiting for capacity. */
  readonly pending: number;
  /** GPUs of leases being served. */
  readonly ready: number;
}

export class SimMetrics implements SimExecutorListener {
  readonly waits = new WaitRecorder();
  coldStarts = 0;
  preemptions = 0;
  /** Calls a container is running. */
  running = 0;
  /** Containers started and not ready (nor exited) yet. */
  private starting = 0;
  /** Calls that arrived and no container has taken yet. */
  private readonly waiting = new Set<SimCallArgs>();
  /** Containers started and exited so far: the step invariants look again only when this (or the fleet) moved. */
  containerEvents = 0;
  /** Every container the executor started, by id (the live ones have no end). */
  readonly containers = new Map<string, ContainerRecord>();
  readonly live = new Map<string, ContainerRecord>();
  /** Live containers' GPUs per instance (GPU index → container id), kept as containers start and exit. */
  readonly gpuHolders = new Map<string, Map<number, string>>();
  /** The first GPU two live containers held at once, in words (found as the second one started). */
  doubleBooked: string | undefined;
  /** Containers started since the step invariants last looked (they look at each new one once). */
  readonly startedSinceCheck: string[] = [];
  private unmetGpuMs = 0;
  private lastTouchMs: number;

  constructor(
    private readonly clock: Clock,
    private readonly gpusPerCall: number,
    private readonly leaseGpus: () => LeaseGpus,
  ) {
    this.lastTouchMs = clock.now();
  }

  /** Integrates unmet demand up to now; call before anything it depends on changes. */
  touch(): void {
    const now = this.clock.now();
    if (now > this.lastTouchMs) {
      this.unmetGpuMs += this.unmetGpus() * (now - this.lastTouchMs);
      this.lastTouchMs = now;
    }
  }

  unmetGpus(): number {
    return Math.max(0, this.waiting.size - this.starting) * this.gpusPerCall + this.leaseGpus().pending;
  }

  /** GPUs demanded now: calls running or waiting, and leases served or waiting. */
  demandGpus(): number {
    const leases = this.leaseGpus();
    return (this.running + this.waiting.size) * this.gpusPerCall + leases.pending + leases.ready;
  }

  get unmetGpuHours(): number {
    return this.unmetGpuMs / 3_600_000;
  }

  callArrived(args: SimCallArgs): void {
    this.touch();
    this.waiting.add(args);
  }

  /** A request served after waiting `ms` (a lease becoming ready). */
  served(ms: number): void {
    this.waits.add(ms);
  }

  /** At the end: requests still waiting count with the wait they had so far. */
  censor(nowMs: number): void {
    for (const args of this.waiting) this.waits.add(nowMs - args.arrivalMs);
  }

  containerStarted(spec: ContainerSpec, atMs: number): void {
    this.touch();
    this.containerEvents++;
    this.coldStarts++;
    this.starting++;
    const record: ContainerRecord = {
      instanceId: spec.instanceId,
      gpuIndices: spec.gpuIndices,
      startMs: atMs,
      endMs: undefined,
      ready: false,
    };
    this.containers.set(spec.containerId, record);
    this.live.set(spec.containerId, record);
    this.startedSinceCheck.push(spec.containerId);
    let held = this.gpuHolders.get(spec.instanceId);
    if (!held) {
      held = new Map();
      this.gpuHolders.set(spec.instanceId, held);
    }
    for (const g of spec.gpuIndices) {
      const other = held.get(g);
      if (other !== undefined)
        this.doubleBooked ??= `GPU ${g} of ${spec.instanceId} is held by ${other} and ${spec.containerId}`;
      held.set(g, spec.containerId);
    }
  }

  containerReady(containerId: string): void {
    this.touch();
    const record = this.live.get(containerId);
    if (record && !record.ready) {
      record.ready = true;
      this.starting--;
    }
  }

  containerExited(containerId: string, atMs: number): void {
    this.touch();
    this.containerEvents++;
    const record = this.live.get(containerId);
    if (!record) return;
    if (!record.ready) this.starting--;
    record.endMs = atMs;
    this.live.delete(containerId);
    const held = this.gpuHolders.get(record.instanceId);
    if (held) {
      for (const g of record.gpuIndices) if (held.get(g) === containerId) held.delete(g);
      if (held.size === 0) this.gpuHolders.delete(record.instanceId);
    }
  }

  inputStarted(args: SimCallArgs, atMs: number, first: boolean): void {
    this.touch();
    this.running++;
    if (first) {
      this.waiting.delete(args);
      this.waits.add(atMs - args.arrivalMs);
    }
  }

  inputEnded(): void {
    this.touch();
    this.running--;
  }
}
