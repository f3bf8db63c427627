/**
 * This machine as a vendor: one region, one offering, stock of one instance (the host itself). Its GPUs are found
 * through nvidia-smi; without NVIDIA GPUs it offers a configured number of virtual GPUs of a configured type,
 * so the broker and runtime can run real work on a laptop or CI. "Provisioning" the host hands it to the broker,
 * "terminating" takes it back; nothing is started or stopped on the machine.
 */
import { cpus, hostname, totalmem } from 'node:os';
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import { usdToMicros } from '../../lib/money.ts';
import { type Offering, offeringId } from '../catalog/offering.ts';
import { EventHub } from '../event-hub.ts';
import { instanceSnapshot, stateChangedEvent } from '../instance-snapshot.ts';
import type {
  EventsOptions,
  Instance,
  InstanceState,
  ListFilter,
  OfferingQuote,
  Provider,
  ProviderEvent,
  ProvisionRequest,
  TerminationReason,
} from '../provider.ts';
import {
  InsufficientCapacityError,
  InvalidRequestError,
  ProviderUnavailableError,
} from '../provider-errors.ts';
import { detectNvidiaGpus, type GpuDevice } from './nvidia-smi.ts';

export interface LocalProviderOptions {
  readonly clock: Clock;
  /** Used when nvidia-smi finds no GPU (default: 1 virtual GPU of type `cpu`). */
  readonly virtualGpus?: { readonly count: number; readonly gpu: string; readonly memoryGiB?: number };
  /** GPUs to offer instead of asking nvidia-smi (recorded output, tests). */
  readonly devices?: readonly GpuDevice[];
  /** The nvidia-smi executable (default `nvidia-smi` on the PATH); `false` skips detection. */
  readonly nvidiaSmi?: string | false;
  /** What an hour of this machine costs, for plans and invoices (default 0). */
  readonly usdPerHour?: number;
  /** Region group demand for this machine is stated in (default `local`). */
  readonly regionGroup?: string;
  /** Time from provision to running (default 0: the machine is already up). */
  readonly provisioningDelayMs?: number;
}

export const LOCAL_VENDOR = 'local';
export const LOCAL_REGION = 'local';
export const LOCAL_ZONE = 'local-a';
const RETRY_AFTER_MS = 60_000;

interface LocalInstance {
  readonly id: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly idempotencyKey: string;
  readonly launchedAtMs: number;
  state: InstanceState;
  runningAtMs?: number;
  terminatedAtMs?: number;
  terminationReason?: TerminationReason;
  timer?: TimerHandle;
}

export class LocalProvider implements Provider {
  readonly vendor = LOCAL_VENDOR;
  private readonly hub = new EventHub<ProviderEvent>();
  private readonly instances: LocalInstance[] = [];
  private readonly keys = new Map<string, { fingerprint: string; instance: LocalInstance }>();
  private closed = false;

  private constructor(
    private readonly clock: Clock,
    /** The GPUs this host offers (one model: the most numerous one when the host mixes models). */
    readonly devices: readonly GpuDevice[],
    /** How the GPUs were found, for the log: `nvidia-smi` or why virtual ones are used. */
    readonly detection: string,
    readonly offering: Offering,
    private readonly provisioningDelayMs: number,
  ) {}

  /** Finds the GPUs (nvidia-smi, then the virtual fallback) and builds the provider. */
  static async create(options: LocalProviderOptions): Promise<LocalProvider> {
    let devices = options.devices ? [...options.devices] : [];
    let detection = options.devices ? 'given devices' : '';
    if (!options.devices) {
      const found =
        options.nvidiaSmi === false
          ? { found: false as const, reason: 'detection turned off' }
          : await detectNvidiaGpus(options.nvidiaSmi);
      if (found.found) {
        devices = found.devices;
        detection = 'nvidia-smi';
      } else {
        const virtual = options.virtualGpus ?? { count: 1, gpu: 'cpu', memoryGiB: 0 };
        if (!Number.isSafeInteger(virtual.count) || virtual.count < 1 || virtual.count > 64)
          throw new InvalidRequestError(LOCAL_VENDOR, 'virtualGpus.count', 'must be an integer from 1 to 64');
        devices = Array.from({ length: virtual.count }, (_, index) => ({
          index,
          name: `virtual ${virtual.gpu}`,
          gpu: virtual.gpu,
          memoryMiB: Math.round((virtual.memoryGiB ?? 0) * 1024),
        }));
        detection = `virtual (${found.reason})`;
      }
    }
    if (devices.length === 0)
      throw new InvalidRequestError(LOCAL_VENDOR, 'devices', 'at least one GPU is needed');
    const model = mostNumerousModel(devices);
    const offered = devices.filter((d) => d.gpu === model);
    const instanceType = `host-${offered.length}x${model}`;
    const offering: Offering = {
      id: offeringId(LOCAL_VENDOR, LOCAL_REGION, instanceType, 'on-demand'),
      vendor: LOCAL_VENDOR,
      region: LOCAL_REGION,
      zone: LOCAL_ZONE,
      regionGroup: options.regionGroup ?? 'local',
      instanceType,
      gpu: model,
      gpusPerInstance: offered.length,
      gpuMemoryGiB: Math.round((offered[0]?.memoryMiB ?? 0) / 1024),
      vcpus: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      capacityType: 'on-demand',
      microsPerHour: usdToMicros(options.usdPerHour ?? 0),
    };
    return new LocalProvider(options.clock, offered, detection, offering, options.provisioningDelayMs ?? 0);
  }

  async offerings(): Promise<OfferingQuote[]> {
    this.assertOpen();
    const available = this.active() === undefined;
    return [{ ...this.offering, available, availableZones: available ? [LOCAL_ZONE] : [] }];
  }

  async provision(request: ProvisionRequest): Promise<Instance[]> {
    this.assertOpen();
    if (request.offeringId !== this.offering.id)
      throw new InvalidRequestError(
        this.vendor,
        'offeringId',
        `"${request.offeringId}" is not ${this.offering.id}`,
      );
    if (!Number.isSafeInteger(request.count) || request.count < 1)
      throw new InvalidRequestError(this.vendor, 'count', `must be a positive integer, got ${request.count}`);
    if (typeof request.idempotencyKey !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(request.idempotencyKey))
      throw new InvalidRequestError(
        this.vendor,
        'idempotencyKey',
        'must be 1–255 printable ASCII characters',
      );
    if (request.zone !== undefined && request.zone !== LOCAL_ZONE)
      throw new InvalidRequestError(this.vendor, 'zone', `"${request.zone}" is not ${LOCAL_ZONE}`);
    const fingerprint = JSON.stringify([request.count, Object.entries(request.tags ?? {}).sort()]);
    const seen = this.keys.get(request.idempotencyKey);
    if (seen) {
      if (seen.fingerprint !== fingerprint)
        throw new InvalidRequestError(
          this.vendor,
          'idempotencyKey',
          `"${request.idempotencyKey}" was used before with other parameters`,
        );
      return [this.snapshot(seen.instance)];
    }
    if (request.count > 1 || this.active())
      throw new InsufficientCapacityError(
        this.vendor,
        this.offering.id,
        RETRY_AFTER_MS,
        request.count > 1 ? 'this machine is one instance' : 'this machine is already in use',
      );
    const now = this.clock.now();
    const instance: LocalInstance = {
      // The launch time keeps ids unique across broker restarts, which start a fresh provider.
      id: `local-${hostname().replace(/[^a-zA-Z0-9-]/g, '-')}-${now.toString(36)}-${this.instances.length + 1}`,
      tags: Object.freeze({ ...(request.tags ?? {}) }),
      idempotencyKey: request.idempotencyKey,
      launchedAtMs: now,
      state: 'pending',
    };
    this.instances.push(instance);
    this.keys.set(request.idempotencyKey, { fingerprint, instance });
    this.publish(instance, null, 'pending');
    instance.timer = this.clock.setTimer(now + this.provisioningDelayMs, () => {
      instance.timer = undefined;
      if (instance.state !== 'pending') return;
      instance.state = 'running';
      instance.runningAtMs = this.clock.now();
      this.publish(instance, 'pending', 'running');
    });
    return [this.snapshot(instance)];
  }

  async terminate(instanceIds: readonly string[]): Promise<void> {
    this.assertOpen();
    for (const id of new Set(instanceIds)) {
      const instance = this.instances.find((i) => i.id === id);
      if (!instance || instance.state === 'terminating' || instance.state === 'terminated') continue;
      instance.timer?.cancel();
      const from = instance.state;
      instance.state = 'terminating';
      this.publish(instance, from, 'terminating');
      instance.timer = this.clock.setTimer(this.clock.now(), () => {
        instance.timer = undefined;
        instance.state = 'terminated';
        instance.terminatedAtMs = this.clock.now();
        instance.terminationReason = 'requested';
        this.publish(instance, 'terminating', 'terminated', 'requested');
      });
    }
  }

  async list(filter: ListFilter = {}): Promise<Instance[]> {
    this.assertOpen();
    const wanted = Object.entries(filter.tags ?? {});
    return this.instances
      .filter((i) => filter.includeTerminated || i.state !== 'terminated')
      .filter((i) => wanted.every(([k, v]) => i.tags[k] === v))
      .map((i) => this.snapshot(i));
  }

  events(options: EventsOptions = {}): AsyncIterable<ProviderEvent> {
    return this.hub.iterate(options.signal);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const i of this.instances) i.timer?.cancel();
    this.hub.close();
  }

  private active(): LocalInstance | undefined {
    return this.instances.find((i) => i.state !== 'terminated');
  }

  private assertOpen(): void {
    if (this.closed) throw new ProviderUnavailableError(this.vendor, undefined, 'the client is closed');
  }

  private publish(
    instance: LocalInstance,
    from: InstanceState | null,
    to: InstanceState,
    reason?: TerminationReason,
  ): void {
    this.hub.publish(
      stateChangedEvent(
        this.clock.now(),
        this.offering,
        { id: instance.id, zone: LOCAL_ZONE },
        from,
        to,
        reason,
      ),
    );
  }

  private snapshot(i: LocalInstance): Instance {
    return instanceSnapshot(this.offering, {
      ...i,
      zone: LOCAL_ZONE,
      microsPerHour: this.offering.microsPerHour,
    });
  }
}

function mostNumerousModel(devices: readonly GpuDevice[]): string {
  const counts = new Map<string, number>();
  for (const d of devices) counts.set(d.gpu, (counts.get(d.gpu) ?? 0) + 1);
  let best = devices[0]?.gpu ?? 'cpu';
  for (const [gpu, count] of counts) if (count > (counts.get(best) ?? 0)) best = gpu;
  return best;
}
