/**
 * `/metrics`: the broker in Prometheus's text format, through prom-client, named as Prometheus asks (base units:
 * seconds; counters end in `_total`; distributions are histograms). One registry per broker (tests run several in
 * a process). State is read when scraped (fleet, buffer, leases, calls, the latest plan); events are observed as
 * they happen (a lease turning ready, a tick, a provider's error).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { GpubrokerError } from '../lib/errors.ts';
import type { TickReport } from './loop.ts';

/** What the scrape reads from the broker (a view, so that this module needs nothing else of it). */
export interface MetricsSource {
  instances(): Iterable<{
    readonly vendor: string;
    readonly region: string;
    readonly gpu: string;
    readonly offeringId: string;
    readonly capacityType: string;
    readonly state: string;
    readonly usdPerHour: number;
  }>;
  /** GPUs of running instances not leased, per GPU type: the warm buffer that is ready. */
  readyBufferGpus(): ReadonlyMap<string, number>;
  /** The warm buffer the latest tick aimed at, per GPU type. */
  bufferTargetGpus(): ReadonlyMap<string, number>;
  openLeases(): Iterable<{ readonly tenantId: string; readonly status: string }>;
  /** Calls queued or running, per tenant and status. */
  callsInFlight(): Iterable<{ readonly tenantId: string; readonly status: string; readonly count: number }>;
  lastTick(): TickReport | undefined;
}

/** Lease waits: seconds from request to ready (most are served from the buffer at once; a boot takes minutes). */
const LEASE_WAIT_BUCKETS = [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800];
const TICK_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

let processRegistry: Registry | undefined;

/**
 * prom-client's process metrics (CPU, memory, event-loop lag, GC), once per process however many brokers it runs:
 * their collectors (an event-loop delay monitor, a GC observer) cannot be stopped, so they are never made twice.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
    // Gauges that prom-client names with `_total`, which Prometheus keeps for counters (promtool refuses them).
    for (const name of [
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
    ])
      processRegistry.removeSingleMetric(name);
  }
  return processRegistry;
}

export class BrokerMetrics {
  readonly registry = new Registry();
  private readonly leaseWait: Histogram<'gpu'>;
  private readonly tickDuration: Histogram;
  private readonly solveDuration: Histogram;
  private readonly providerErrors: Counter<'vendor' | 'kind'>;

  constructor(source: MetricsSource) {
    const registers = [this.registry];
    this.leaseWait = new Histogram({
      name: 'gpubroker_lease_wait_seconds',
      help: 'Time from a lease request to its GPUs being ready',
      labelNames: ['gpu'],
      buckets: LEASE_WAIT_BUCKETS,
      registers,
    });
    this.tickDuration = new Histogram({
      name: 'gpubroker_tick_duration_seconds',
      help: 'Duration of a control-loop tick (observe, forecast, plan and act, record)',
      buckets: TICK_BUCKETS,
      registers,
    });
    this.solveDuration = new Histogram({
      name: 'gpubroker_solve_duration_seconds',
      help: 'Solve time of the plan of a tick that planned',
      buckets: TICK_BUCKETS,
      registers,
    });
    this.providerErrors = new Counter({
      name: 'gpubroker_provider_errors_total',
      help: 'Provider calls that failed, by vendor and kind (insufficient_capacity, quota_exceeded, throttled, invalid_request, provider_unavailable)',
      labelNames: ['vendor', 'kind'],
      registers,
    });
    new Gauge({
      name: 'gpubroker_instances',
      help: 'Instances held, by vendor, region, GPU, offering, capacity type and state',
      labelNames: ['vendor', 'region', 'gpu', 'offering', 'capacity_type', 'state'],
      registers,
      collect() {
        this.reset();
        for (const i of source.instances())
          this.inc({
            vendor: i.vendor,
            region: i.region,
            gpu: i.gpu,
            offering: i.offeringId,
            capacity_type: i.capacityType,
            state: i.state,
          });
      },
    });
    new Gauge({
      name: 'gpubroker_fleet_usd_per_hour',
      help: 'What the instances held (not terminated) cost per hour, by vendor',
      labelNames: ['vendor'],
      registers,
      collect() {
        this.reset();
        for (const i of source.instances())
          if (i.state !== 'terminated') this.inc({ vendor: i.vendor }, i.usdPerHour);
      },
    });
    new Gauge({
      name: 'gpubroker_buffer_ready_gpus',
      help: 'Warm buffer ready: GPUs of running instances not leased, by GPU type',
      labelNames: ['gpu'],
      registers,
      collect() {
        this.reset();
        for (const [gpu, gpus] of source.readyBufferGpus()) this.set({ gpu }, gpus);
      },
    });
    new Gauge({
      name: 'gpubroker_buffer_target_gpus',
      help: 'Warm buffer the latest tick aimed at, by GPU type (compare with gpubroker_buffer_ready_gpus)',
      labelNames: ['gpu'],
      registers,
      collect() {
        this.reset();
        for (const [gpu, gpus] of source.bufferTargetGpus()) this.set({ gpu }, gpus);
      },
    });
    new Gauge({
      name: 'gpubroker_leases',
      help: 'Open leases by tenant and status',
      labelNames: ['tenant', 'status'],
      registers,
      collect() {
        this.reset();
        for (const lease of source.openLeases()) this.inc({ tenant: lease.tenantId, status: lease.status });
      },
    });
    new Gauge({
      name: 'gpubroker_calls',
      help: 'Function calls queued (pending) or running, by tenant',
      labelNames: ['tenant', 'status'],
      registers,
      collect() {
        this.reset();
        for (const c of source.callsInFlight()) this.set({ tenant: c.tenantId, status: c.status }, c.count);
      },
    });
    const fromTick = (name: string, help: string, read: (tick: TickReport) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const tick = source.lastTick();
          if (tick) this.set(read(tick));
        },
      });
    fromTick('gpubroker_plan_usd_per_hour', 'Spend per hour of the latest plan', (t) => t.usdPerHour);
    fromTick(
      'gpubroker_plan_unmet_gpus',
      'GPUs of demand the latest plan could not cover',
      (t) => t.unmetGpus,
    );
    fromTick(
      'gpubroker_plan_buffer_shortfall_gpus',
      'Warm-buffer GPUs the latest plan could not hold',
      (t) => t.bufferShortfallGpus,
    );
    fromTick('gpubroker_last_tick_timestamp_seconds', 'When the latest tick ran', (t) => t.atMs / 1000);
  }

  leaseReady(gpu: string, waitedMs: number): void {
    this.leaseWait.observe({ gpu }, waitedMs / 1000);
  }

  tick(report: TickReport): void {
    this.tickDuration.observe(report.tickMs / 1000);
    if (report.status !== 'idle') this.solveDuration.observe(report.solveMs / 1000);
  }

  /** A provider call failed: `kind` is the error's code (insufficient_capacity, provider_unavailable, …). */
  providerError(vendor: string, error: unknown): void {
    this.providerErrors.inc({ vendor, kind: error instanceof GpubrokerError ? error.code : 'unknown' });
  }

  render(): Promise<string> {
    return Registry.merge([processMetrics(), this.registry]).metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
