/**
 * A fake Compute Engine for tests: a node:http server on 127.0.0.1 speaking the REST v1 API the adapter uses, with
 * JSON bodies, `kind` fields, Operation resources (PENDING/RUNNING/DONE, failures in `error.errors[]`) and errors in
 * Google's JSON error format. The SDK is pointed at it through its endpoint options, so the adapter's real calls
 * are what is tested. Test code, not product code.
 *
 * Methods (each handler cites its reference page):
 *   instances: aggregatedList, list, get, bulkInsert, delete · zoneOperations: get, wait, list ·
 *   acceleratorTypes: aggregatedList · and the Cloud Billing Catalog API's services.skus.list
 *   (fake-billing-catalog.ts), which the adapter reads prices from, on the same server.
 *
 * Knobs: zones and their accelerator types, capacity per machine type / zone / provisioning model (stock-outs are
 * reported in the finished operation, as GCE does, or synchronously), GPU quotas per region, boot and stop delays,
 * operation delay, page size, injected faults, spot preemption, and the accepted access token.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Clock, RealClock, type TimerHandle } from '../../../lib/clock.ts';
import { FakeBillingCatalog, type FakeSku } from './fake-billing-catalog.ts';
import { type Predicate, parseFilter } from './fake-filter.ts';
import { errors, type GoogleErrorSpec, googleErrorBody } from './google-error.ts';

export type FakeMethod =
  | 'instances.aggregatedList'
  | 'instances.list'
  | 'instances.get'
  | 'instances.bulkInsert'
  | 'instances.delete'
  | 'zoneOperations.get'
  | 'zoneOperations.wait'
  | 'zoneOperations.list'
  | 'acceleratorTypes.aggregatedList'
  | 'regions.get'
  | 'services.skus.list';

/** A failure to inject: an HTTP error response, or an operation that finishes with errors (writes only). */
export type FakeFault = GoogleErrorSpec | { readonly operationError: OperationError };

export interface OperationError {
  readonly code: string;
  readonly message?: string;
  readonly httpStatus?: number;
  readonly errorDetails?: readonly Record<string, unknown>[];
}

export interface CapacityRule {
  readonly machineType?: string;
  readonly zone?: string;
  readonly provisioningModel?: 'STANDARD' | 'SPOT';
  /** Instances that can exist at once (not yet deleted) for a match. */
  readonly max: number;
}

export interface QuotaRule {
  /** GPU quota metric, e.g. `NVIDIA_L4_GPUS` or `PREEMPTIBLE_NVIDIA_L4_GPUS`. */
  readonly metric: string;
  readonly region: string;
  readonly limit: number;
}

export interface FakeComputeOptions {
  readonly clock?: Clock;
  readonly project?: string;
  /** The only bearer token accepted; others get 401. */
  readonly token?: string;
  /** Zone → accelerator types it offers. */
  readonly zones?: Readonly<Record<string, readonly string[]>>;
  readonly capacity?: readonly CapacityRule[];
  readonly quotas?: readonly QuotaRule[];
  /** PROVISIONING → STAGING at half of it → RUNNING. */
  readonly bootDelayMs?: number;
  /** STOPPING → gone (or TERMINATED, for spot VMs that stop on preemption). */
  readonly stopDelayMs?: number;
  /** How long a bulkInsert operation stays RUNNING. */
  readonly operationDelayMs?: number;
  /** Most items on one list page, whatever `maxResults` asks. */
  readonly pageSize?: number;
  /** Longest hold of zoneOperations.wait (GCE: about two minutes). */
  readonly waitTimeoutMs?: number;
  /** How stock-outs and quota errors are reported: in the finished operation (default) or as HTTP errors. */
  readonly failureDelivery?: 'operation' | 'http';
  /** Compute Engine's SKUs in the billing catalog (services.skus.list pages them by `pageSize` too). */
  readonly skus?: readonly FakeSku[];
}

export interface FakeInstance {
  readonly id: string;
  readonly name: string;
  readonly zone: string;
  readonly machineType: string;
  status: string;
  readonly labels: Record<string, string>;
  readonly metadata: { key: string; value: string }[];
  readonly scheduling: Record<string, unknown>;
  readonly guestAccelerators: { acceleratorType: string; acceleratorCount: number }[];
  readonly creationTimestamp: string;
  lastStartTimestamp?: string;
  lastStopTimestamp?: string;
  readonly requestId: string | undefined;
  timers: TimerHandle[];
}

interface FakeOperation {
  readonly resource: Record<string, unknown>;
  readonly zone: string;
  readonly waiters: (() => void)[];
}

export interface RecordedRequest {
  /** Fake clock time the request arrived. */
  readonly atMs: number;
  readonly method: FakeMethod | 'unknown';
  readonly httpMethod: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly host: string | undefined;
  readonly authorized: boolean;
  /** The JSON body, parsed (undefined without one). */
  readonly body?: unknown;
}

const API = 'https://www.googleapis.com/compute/v1';

const ALL_ACCELERATORS = [
  'nvidia-l4',
  'nvidia-tesla-t4',
  'nvidia-tesla-v100',
  'nvidia-tesla-a100',
  'nvidia-a100-80gb',
  'nvidia-h100-80gb',
];

export class FakeCompute {
  readonly project: string;
  readonly token: string;
  readonly requests: RecordedRequest[] = [];
  private readonly clock: Clock;
  private readonly zones: Readonly<Record<string, readonly string[]>>;
  private readonly options: FakeComputeOptions;
  private readonly instancesByKey = new Map<string, FakeInstance>();
  private readonly operations = new Map<string, FakeOperation>();
  private readonly byRequestId = new Map<string, FakeOperation>();
  private readonly faults: { method: FakeMethod; fault: FakeFault; times: number }[] = [];
  private readonly timers = new Set<TimerHandle>();
  private readonly billing: FakeBillingCatalog;
  private server: Server | undefined;
  private nextId = 7_000_000_000_000_000_000n;

  private constructor(options: FakeComputeOptions) {
    this.options = options;
    this.clock = options.clock ?? new RealClock();
    this.project = options.project ?? 'gpubroker-test';
    this.token = options.token ?? 'fake-access-token';
    this.zones = options.zones ?? {
      'us-central1-a': ALL_ACCELERATORS,
      'us-central1-b': ALL_ACCELERATORS,
      'us-east1-b': ALL_ACCELERATORS,
    };
    this.billing = new FakeBillingCatalog(options.skus ?? [], options.pageSize ?? 500);
  }

  static async start(options: FakeComputeOptions = {}): Promise<FakeCompute> {
    const fake = new FakeCompute(options);
    fake.server = createServer((req, res) => void fake.handle(req, res));
    await new Promise<void>((resolve) => fake.server?.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** Where to point the SDK: `apiEndpoint`, `port`, `protocol`. */
  get endpoint(): { host: string; port: number; protocol: 'http' } {
    const address = this.server?.address() as AddressInfo | undefined;
    if (!address) throw new Error('the fake is not listening');
    return { host: '127.0.0.1', port: address.port, protocol: 'http' };
  }

  /** Sets a SKU of the billing catalog (same description and usage type: a new price). */
  putSku(sku: FakeSku): void {
    this.billing.put(sku);
  }

  /** Makes the next `times` calls of `method` fail with `fault`. */
  inject(method: FakeMethod, fault: FakeFault, times = 1): void {
    this.faults.push({ method, fault, times });
  }

  /** Instances that exist now (deleted ones are gone, as in GCE). */
  instances(): FakeInstance[] {
    return [...this.instancesByKey.values()];
  }

  /** Calls of `method` received so far. */
  calls(method: FakeMethod): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method);
  }

  /**
   * Reclaims a spot VM as GCE does (https://cloud.google.com/compute/docs/instances/spot#preemption): a DONE
   * `compute.instances.preempted` operation by `system`, STOPPING, then deleted (or TERMINATED when its
   * termination action is STOP) after the stop delay.
   */
  preempt(zone: string, name: string): void {
    const instance = this.instancesByKey.get(`${zone}/${name}`);
    if (!instance) throw new Error(`no instance ${zone}/${name}`);
    const op = this.newOperation(zone, 'compute.instances.preempted', instance, 'system');
    this.finish(op);
    this.stop(instance, instance.scheduling.instanceTerminationAction !== 'STOP');
  }

  /**
   * A host failure of a VM that does not restart (`automaticRestart: false`): a `compute.instances.hostError`
   * operation and the VM TERMINATED, left in place as GCE leaves it
   * (https://cloud.google.com/compute/docs/instances/host-maintenance-overview).
   */
  failHost(zone: string, name: string): void {
    const instance = this.instancesByKey.get(`${zone}/${name}`);
    if (!instance) throw new Error(`no instance ${zone}/${name}`);
    this.finish(this.newOperation(zone, 'compute.instances.hostError', instance, 'system'));
    for (const t of instance.timers.splice(0)) t.cancel();
    instance.status = 'TERMINATED';
    instance.lastStopTimestamp = this.timestamp();
  }

  async close(): Promise<void> {
    for (const timer of this.timers) timer.cancel();
    for (const instance of this.instancesByKey.values()) for (const t of instance.timers) t.cancel();
    for (const op of this.operations.values()) for (const wake of op.waiters.splice(0)) wake();
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ---- HTTP ---------------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const body = await readBody(req);
    const route = this.route(req.method ?? 'GET', url.pathname);
    const authorized = req.headers.authorization === `Bearer ${this.token}`;
    this.requests.push({
      atMs: this.clock.now(),
      method: route?.method ?? 'unknown',
      httpMethod: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      host: req.headers.host,
      authorized,
      ...(body ? { body: parseJson(body) } : {}),
    });
    const send = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(JSON.stringify(json));
    };
    const fail = (spec: GoogleErrorSpec) => send(spec.http, googleErrorBody(spec));
    if (!route) return fail(errors.notFound(url.pathname));
    if (!authorized) return fail(errors.unauthenticated());
    if (route.project !== undefined && route.project !== this.project)
      return fail(errors.notFound(`projects/${route.project}`));
    if (route.zone !== undefined && !(route.zone in this.zones))
      return fail(errors.notFound(`projects/${this.project}/zones/${route.zone}`));
    const injected = this.takeFault(route.method);
    if (injected && !('operationError' in injected)) return fail(injected);
    let parsed: unknown;
    try {
      parsed = body.length > 0 ? JSON.parse(body) : {};
    } catch {
      return fail({ http: 400, reason: 'parseError', message: 'Parse Error' });
    }
    try {
      const answer = await this.dispatch(route, url.searchParams, parsed, injected?.operationError);
      if ('error' in answer) return fail(answer.error);
      send(200, answer.json);
    } catch (error) {
      fail(errors.invalid((error as Error).message));
    }
  }

  private route(
    httpMethod: string,
    path: string,
  ): { method: FakeMethod; project?: string; zone?: string; name?: string } | undefined {
    const parts = path.split('/').filter(Boolean);
    // Cloud Billing Catalog API: GET /v1/services/{service}/skus.
    if (
      httpMethod === 'GET' &&
      parts[0] === 'v1' &&
      parts[1] === 'services' &&
      parts[3] === 'skus' &&
      !parts[4]
    )
      return { method: 'services.skus.list', name: parts[2] ?? '' };
    if (parts[0] !== 'compute' || parts[1] !== 'v1' || parts[2] !== 'projects' || !parts[3]) return undefined;
    const project = parts[3];
    const rest = parts.slice(4).join('/');
    if (httpMethod === 'GET' && parts[4] === 'regions' && parts[5] && parts.length === 6)
      return { method: 'regions.get', project, name: parts[5] };
    if (httpMethod === 'GET' && rest === 'aggregated/instances')
      return { method: 'instances.aggregatedList', project };
    if (httpMethod === 'GET' && rest === 'aggregated/acceleratorTypes')
      return { method: 'acceleratorTypes.aggregatedList', project };
    if (parts[4] !== 'zones' || !parts[5]) return undefined;
    const zone = parts[5];
    const [collection, name, verb] = parts.slice(6);
    if (collection === 'instances') {
      if (name === undefined && httpMethod === 'GET') return { method: 'instances.list', project, zone };
      if (name === 'bulkInsert' && verb === undefined && httpMethod === 'POST')
        return { method: 'instances.bulkInsert', project, zone };
      if (name !== undefined && verb === undefined && httpMethod === 'GET')
        return { method: 'instances.get', project, zone, name };
      if (name !== undefined && verb === undefined && httpMethod === 'DELETE')
        return { method: 'instances.delete', project, zone, name };
    }
    if (collection === 'operations') {
      if (name === undefined && httpMethod === 'GET') return { method: 'zoneOperations.list', project, zone };
      if (name !== undefined && verb === undefined && httpMethod === 'GET')
        return { method: 'zoneOperations.get', project, zone, name };
      if (name !== undefined && verb === 'wait' && httpMethod === 'POST')
        return { method: 'zoneOperations.wait', project, zone, name };
    }
    return undefined;
  }

  private takeFault(method: FakeMethod): FakeFault | undefined {
    const entry = this.faults.find((f) => f.method === method && f.times > 0);
    if (!entry) return undefined;
    entry.times--;
    return entry.fault;
  }

  private async dispatch(
    route: { method: FakeMethod; zone?: string; name?: string },
    query: URLSearchParams,
    body: unknown,
    operationError: OperationError | undefined,
  ): Promise<{ json: unknown } | { error: GoogleErrorSpec }> {
    const zone = route.zone ?? '';
    const name = route.name ?? '';
    switch (route.method) {
      case 'instances.aggregatedList':
        return this.aggregatedInstances(query);
      case 'instances.list':
        return this.listInstances(zone, query);
      case 'instances.get':
        return this.getInstance(zone, name);
      case 'instances.bulkInsert':
        return this.bulkInsert(zone, query.get('requestId') ?? undefined, body, operationError);
      case 'instances.delete':
        return this.deleteInstance(zone, name, query.get('requestId') ?? undefined, operationError);
      case 'zoneOperations.get':
        return this.getOperation(zone, name);
      case 'zoneOperations.wait':
        return this.waitOperation(zone, name);
      case 'zoneOperations.list':
        return this.listOperations(zone, query);
      case 'acceleratorTypes.aggregatedList':
        return this.aggregatedAcceleratorTypes(query);
      case 'regions.get':
        return this.getRegion(name);
      case 'services.skus.list': {
        const page = this.billing.list(name, query);
        return page === undefined ? { error: errors.notFound(`services/${name}`) } : { json: page };
      }
    }
  }

  // ---- instances ----------------------------------------------------------------------------------------------

  /** https://cloud.google.com/compute/docs/reference/rest/v1/instances/aggregatedList */
  private aggregatedInstances(query: URLSearchParams): { json: unknown } {
    const matches = this.filtered(query);
    const page = this.page(matches, query);
    const items: Record<string, unknown> = {};
    for (const zone of Object.keys(this.zones)) {
      const here = page.items.filter((i) => i.zone === zone).map((i) => this.resource(i));
      items[`zones/${zone}`] = here.length > 0 ? { instances: here } : noResults(`zones/${zone}`);
    }
    return {
      json: {
        kind: 'compute#instanceAggregatedList',
        id: `projects/${this.project}/aggregated/instances`,
        items,
        selfLink: `${API}/projects/${this.project}/aggregated/instances`,
        ...(page.next ? { nextPageToken: page.next } : {}),
      },
    };
  }

  /** https://cloud.google.com/compute/docs/reference/rest/v1/instances/list */
  private listInstances(zone: string, query: URLSearchParams): { json: unknown } {
    const page = this.page(
      this.filtered(query).filter((i) => i.zone === zone),
      query,
    );
    return {
      json: {
        kind: 'compute#instanceList',
        id: `projects/${this.project}/zones/${zone}/instances`,
        items: page.items.map((i) => this.resource(i)),
        selfLink: `${API}/projects/${this.project}/zones/${zone}/instances`,
        ...(page.next ? { nextPageToken: page.next } : {}),
      },
    };
  }

  /** https://cloud.google.com/compute/docs/reference/rest/v1/instances/get */
  private getInstance(zone: string, name: string): { json: unknown } | { error: GoogleErrorSpec } {
    const instance = this.instancesByKey.get(`${zone}/${name}`);
    if (!instance)
      return { error: errors.notFound(`projects/${this.project}/zones/${zone}/instances/${name}`) };
    return { json: this.resource(instance) };
  }

  /**
   * https://cloud.google.com/compute/docs/reference/rest/v1/instances/bulkInsert — body BulkInsertInstanceResource
   * (https://cloud.google.com/compute/docs/reference/rest/v1/BulkInsertInstanceResource). Creates `count` VMs, or,
   * when fewer than `minCount` fit (capacity, quota), none: the operation then finishes with the error.
   */
  private bulkInsert(
    zone: string,
    requestId: string | undefined,
    body: unknown,
    injected: OperationError | undefined,
  ): { json: unknown } | { error: GoogleErrorSpec } {
    const seen = requestId ? this.byRequestId.get(requestId) : undefined;
    if (seen) return { json: seen.resource };
    const spec = body as {
      count?: string | number;
      minCount?: string | number;
      namePattern?: string;
      perInstanceProperties?: Record<string, { name?: string }>;
      instanceProperties?: {
        machineType?: string;
        labels?: Record<string, string>;
        metadata?: { items?: { key: string; value: string }[] };
        scheduling?: Record<string, unknown>;
        guestAccelerators?: { acceleratorType: string; acceleratorCount: number }[];
      };
    };
    const count = Number(spec.count ?? 0);
    const minCount = Number(spec.minCount ?? count);
    const names = Object.keys(spec.perInstanceProperties ?? {});
    const properties = spec.instanceProperties;
    if (!Number.isSafeInteger(count) || count < 1 || count > 5_000)
      return { error: errors.invalid("Invalid value for field 'resource.count'") };
    if (!Number.isSafeInteger(minCount) || minCount < 1 || minCount > count)
      return { error: errors.invalid("Invalid value for field 'resource.minCount'") };
    if (spec.namePattern !== undefined || names.length !== count)
      return { error: errors.invalid('this fake takes perInstanceProperties with one name per instance') };
    if (!properties?.machineType || /[/]/.test(properties.machineType))
      return { error: errors.invalid("Invalid value for field 'resource.instanceProperties.machineType'") };
    const metadataProblem = checkMetadata(properties.metadata?.items ?? []);
    if (metadataProblem) return { error: errors.invalid(metadataProblem) };
    for (const name of names)
      if (!/^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/.test(name))
        return {
          error: errors.invalid(`Invalid value for field 'resource.perInstanceProperties': '${name}'`),
        };

    const machineType = properties.machineType;
    const accelerators = properties.guestAccelerators ?? [];
    const scheduling = properties.scheduling ?? {};
    const model = scheduling.provisioningModel === 'SPOT' ? 'SPOT' : 'STANDARD';
    const failure =
      injected ??
      this.existing(zone, names) ??
      this.quotaShortfall(zone, machineType, accelerators, model, count) ??
      this.capacityShortfall(zone, machineType, model, minCount);
    if (failure && !injected && this.options.failureDelivery === 'http')
      return { error: httpFormOf(failure) };

    const op = this.newOperation(zone, 'bulkInsert', undefined, 'user', requestId);
    this.later(this.options.operationDelayMs ?? 20, () => {
      if (failure) return this.finish(op, failure);
      for (const name of names)
        this.create(zone, name, machineType, properties, accelerators, scheduling, requestId);
      op.resource.instancesBulkInsertOperationMetadata = {
        perLocationStatus: {
          [`zones/${zone}`]: {
            createdVmCount: count,
            failedToCreateVmCount: 0,
            rolledBackVmCount: 0,
            targetVmCount: count,
            status: 'FULFILLED',
          },
        },
      };
      this.finish(op);
    });
    return { json: op.resource };
  }

  /**
   * https://cloud.google.com/compute/docs/reference/rest/v1/instances/delete — the VM goes STOPPING, then is
   * gone; the operation is DONE when it is.
   */
  private deleteInstance(
    zone: string,
    name: string,
    requestId: string | undefined,
    injected: OperationError | undefined,
  ): { json: unknown } | { error: GoogleErrorSpec } {
    const seen = requestId ? this.byRequestId.get(requestId) : undefined;
    if (seen) return { json: seen.resource };
    const instance = this.instancesByKey.get(`${zone}/${name}`);
    if (!instance)
      return { error: errors.notFound(`projects/${this.project}/zones/${zone}/instances/${name}`) };
    const op = this.newOperation(zone, 'delete', instance, 'user', requestId);
    if (injected) {
      this.later(this.options.operationDelayMs ?? 20, () => this.finish(op, injected));
      return { json: op.resource };
    }
    this.stop(instance, true, () => this.finish(op));
    return { json: op.resource };
  }

  private create(
    zone: string,
    name: string,
    machineType: string,
    properties: {
      labels?: Record<string, string>;
      metadata?: { items?: { key: string; value: string }[] };
    },
    accelerators: { acceleratorType: string; acceleratorCount: number }[],
    scheduling: Record<string, unknown>,
    requestId: string | undefined,
  ): void {
    const instance: FakeInstance = {
      id: String(this.nextId++),
      name,
      zone,
      machineType,
      status: 'PROVISIONING',
      labels: { ...(properties.labels ?? {}) },
      metadata: [...(properties.metadata?.items ?? [])],
      scheduling: { ...scheduling },
      guestAccelerators: accelerators.map((a) => ({ ...a })),
      creationTimestamp: this.timestamp(),
      requestId,
      timers: [],
    };
    this.instancesByKey.set(`${zone}/${name}`, instance);
    const boot = this.options.bootDelayMs ?? 200;
    instance.timers.push(
      this.clock.setTimer(this.clock.now() + Math.floor(boot / 2), () => {
        if (instance.status === 'PROVISIONING') instance.status = 'STAGING';
      }),
      this.clock.setTimer(this.clock.now() + boot, () => {
        if (instance.status !== 'STAGING' && instance.status !== 'PROVISIONING') return;
        instance.status = 'RUNNING';
        instance.lastStartTimestamp = this.timestamp();
      }),
    );
  }

  /** STOPPING now; after the stop delay deleted (or TERMINATED when `remove` is false). */
  private stop(instance: FakeInstance, remove: boolean, done?: () => void): void {
    for (const t of instance.timers.splice(0)) t.cancel();
    instance.status = 'STOPPING';
    instance.timers.push(
      this.clock.setTimer(this.clock.now() + (this.options.stopDelayMs ?? 100), () => {
        instance.lastStopTimestamp = this.timestamp();
        if (remove) this.instancesByKey.delete(`${instance.zone}/${instance.name}`);
        else instance.status = 'TERMINATED';
        done?.();
      }),
    );
  }

  private existing(zone: string, names: readonly string[]): OperationError | undefined {
    const taken = names.find((n) => this.instancesByKey.has(`${zone}/${n}`));
    return taken
      ? {
          code: 'RESOURCE_ALREADY_EXISTS',
          message: `The resource 'projects/${this.project}/zones/${zone}/instances/${taken}' already exists`,
          httpStatus: 409,
        }
      : undefined;
  }

  private capacityShortfall(
    zone: string,
    machineType: string,
    model: 'STANDARD' | 'SPOT',
    wanted: number,
  ): OperationError | undefined {
    const rule = (this.options.capacity ?? []).find(
      (r) =>
        (r.machineType === undefined || r.machineType === machineType) &&
        (r.zone === undefined || r.zone === zone) &&
        (r.provisioningModel === undefined || r.provisioningModel === model),
    );
    if (!rule) return undefined;
    const used = this.instances().filter(
      (i) => i.zone === zone && i.machineType === machineType && modelOf(i) === model,
    ).length;
    if (used + wanted <= rule.max) return undefined;
    // As GCE words a stock-out, with the structured details it adds to the _WITH_DETAILS form.
    return {
      code: 'ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS',
      message: `The zone 'projects/${this.project}/zones/${zone}' does not have enough resources available to fulfill the request.  '(resource type:compute)'.`,
      httpStatus: 503,
      errorDetails: [
        {
          errorInfo: {
            reason: 'resource_availability',
            domain: 'compute.googleapis.com',
            metadatas: { vmType: machineType, zone },
          },
        },
      ],
    };
  }

  /** https://cloud.google.com/compute/docs/reference/rest/v1/regions/get: the region's GPU quotas and their usage. */
  private getRegion(region: string): { json: unknown } | { error: GoogleErrorSpec } {
    const zones = Object.keys(this.options.zones ?? {}).filter((z) => regionOf(z) === region);
    const rules = (this.options.quotas ?? []).filter((q) => q.region === region);
    if (zones.length === 0 && rules.length === 0) return { error: errors.notFound(`regions/${region}`) };
    const usage = this.instances()
      .filter((i) => regionOf(i.zone) === region)
      .map((i) => gpuUsage(i.machineType, i.guestAccelerators, modelOf(i)));
    return {
      json: {
        kind: 'compute#region',
        name: region,
        status: 'UP',
        quotas: rules.map((q) => ({
          metric: q.metric,
          limit: q.limit,
          usage: usage.filter((u) => u.metric === q.metric).reduce((sum, u) => sum + u.gpus, 0),
        })),
      },
    };
  }

  private quotaShortfall(
    zone: string,
    machineType: string,
    accelerators: readonly { acceleratorType: string; acceleratorCount: number }[],
    model: 'STANDARD' | 'SPOT',
    count: number,
  ): OperationError | undefined {
    const usage = gpuUsage(machineType, accelerators, model);
    const region = regionOf(zone);
    const rule = (this.options.quotas ?? []).find((q) => q.metric === usage.metric && q.region === region);
    if (!rule || usage.gpus === 0) return undefined;
    const used = this.instances()
      .filter((i) => regionOf(i.zone) === region)
      .map((i) => gpuUsage(i.machineType, i.guestAccelerators, modelOf(i)))
      .filter((u) => u.metric === usage.metric)
      .reduce((sum, u) => sum + u.gpus, 0);
    if (used + usage.gpus * count <= rule.limit) return undefined;
    return {
      code: 'QUOTA_EXCEEDED',
      message: `Quota '${rule.metric}' exceeded.  Limit: ${rule.limit.toFixed(1)} in region ${region}.`,
      httpStatus: 403,
      errorDetails: [
        {
          quotaInfo: {
            metricName: `compute.googleapis.com/${rule.metric.toLowerCase()}`,
            limitName: `${rule.metric}-per-project-region`,
            dimensions: { region },
            limit: rule.limit,
          },
        },
      ],
    };
  }

  private filtered(query: URLSearchParams): FakeInstance[] {
    const predicate: Predicate = parseFilter(query.get('filter') ?? undefined);
    return this.instances()
      .filter((i) => predicate(this.resource(i)))
      .sort((a, b) => (a.zone + a.name < b.zone + b.name ? -1 : 1));
  }

  /** The Instance resource (https://cloud.google.com/compute/docs/reference/rest/v1/instances). */
  private resource(i: FakeInstance): Record<string, unknown> {
    const zoneUrl = `${API}/projects/${this.project}/zones/${i.zone}`;
    return {
      kind: 'compute#instance',
      id: i.id,
      creationTimestamp: i.creationTimestamp,
      name: i.name,
      machineType: `${zoneUrl}/machineTypes/${i.machineType}`,
      status: i.status,
      zone: zoneUrl,
      networkInterfaces: [
        {
          kind: 'compute#networkInterface',
          network: `${API}/projects/${this.project}/global/networks/default`,
          networkIP: `10.128.0.${(Number(BigInt(i.id) % 250n) + 2).toString()}`,
          name: 'nic0',
        },
      ],
      disks: [
        {
          kind: 'compute#attachedDisk',
          type: 'PERSISTENT',
          mode: 'READ_WRITE',
          source: `${zoneUrl}/disks/${i.name}`,
          deviceName: 'persistent-disk-0',
          index: 0,
          boot: true,
          autoDelete: true,
        },
      ],
      metadata: { kind: 'compute#metadata', fingerprint: 'ZmFrZQ==', items: i.metadata },
      selfLink: `${zoneUrl}/instances/${i.name}`,
      scheduling: i.scheduling,
      cpuPlatform: i.status === 'RUNNING' ? 'Intel Cascade Lake' : 'Unknown CPU Platform',
      labels: i.labels,
      labelFingerprint: 'ZmFrZQ==',
      guestAccelerators: i.guestAccelerators.map((a) => ({
        acceleratorType: `${zoneUrl}/acceleratorTypes/${a.acceleratorType}`,
        acceleratorCount: a.acceleratorCount,
      })),
      ...(i.lastStartTimestamp ? { lastStartTimestamp: i.lastStartTimestamp } : {}),
      ...(i.lastStopTimestamp ? { lastStopTimestamp: i.lastStopTimestamp } : {}),
      fingerprint: 'ZmFrZQ==',
    };
  }

  // ---- operations ---------------------------------------------------------------------------------------------

  /** https://cloud.google.com/compute/docs/reference/rest/v1/zoneOperations/get */
  private getOperation(zone: string, name: string): { json: unknown } | { error: GoogleErrorSpec } {
    const op = this.operations.get(name);
    if (!op || op.zone !== zone)
      return { error: errors.notFound(`projects/${this.project}/zones/${zone}/operations/${name}`) };
    return { json: op.resource };
  }

  /**
   * https://cloud.google.com/compute/docs/reference/rest/v1/zoneOperations/wait — holds the request until the
   * operation is DONE or the wait deadline passes, then returns the operation as it is.
   */
  private async waitOperation(
    zone: string,
    name: string,
  ): Promise<{ json: unknown } | { error: GoogleErrorSpec }> {
    const op = this.operations.get(name);
    if (!op || op.zone !== zone)
      return { error: errors.notFound(`projects/${this.project}/zones/${zone}/operations/${name}`) };
    if (op.resource.status !== 'DONE')
      await new Promise<void>((resolve) => {
        op.waiters.push(resolve);
        this.later(this.options.waitTimeoutMs ?? 120_000, resolve);
      });
    return { json: op.resource };
  }

  /** https://cloud.google.com/compute/docs/reference/rest/v1/zoneOperations/list */
  private listOperations(zone: string, query: URLSearchParams): { json: unknown } {
    const predicate = parseFilter(query.get('filter') ?? undefined);
    const matches = [...this.operations.values()]
      .filter((op) => op.zone === zone && predicate(op.resource))
      .map((op) => op.resource);
    const page = this.page(matches, query);
    return {
      json: {
        kind: 'compute#operationList',
        id: `projects/${this.project}/zones/${zone}/operations`,
        items: page.items,
        selfLink: `${API}/projects/${this.project}/zones/${zone}/operations`,
        ...(page.next ? { nextPageToken: page.next } : {}),
      },
    };
  }

  /** An Operation resource (https://cloud.google.com/compute/docs/reference/rest/v1/zoneOperations). */
  private newOperation(
    zone: string,
    operationType: string,
    target: FakeInstance | undefined,
    user: 'user' | 'system',
    requestId?: string,
  ): FakeOperation {
    const now = this.timestamp();
    const name = `operation-${this.clock.now()}-${randomBytes(6).toString('hex')}`;
    const zoneUrl = `${API}/projects/${this.project}/zones/${zone}`;
    const op: FakeOperation = {
      zone,
      waiters: [],
      resource: {
        kind: 'compute#operation',
        id: String(this.nextId++),
        name,
        zone: zoneUrl,
        operationType,
        ...(target ? { targetLink: `${zoneUrl}/instances/${target.name}`, targetId: target.id } : {}),
        status: 'PENDING',
        user: user === 'system' ? 'system' : `tests@${this.project}.iam.gserviceaccount.com`,
        progress: 0,
        insertTime: now,
        startTime: now,
        selfLink: `${zoneUrl}/operations/${name}`,
      },
    };
    this.operations.set(name, op);
    if (requestId) this.byRequestId.set(requestId, op);
    this.later(0, () => {
      if (op.resource.status === 'PENDING') op.resource.status = 'RUNNING';
    });
    return op;
  }

  private finish(op: FakeOperation, failure?: OperationError): void {
    Object.assign(op.resource, {
      status: 'DONE',
      progress: 100,
      endTime: this.timestamp(),
      ...(failure
        ? {
            error: {
              errors: [
                {
                  code: failure.code,
                  message: failure.message ?? failure.code,
                  ...(failure.errorDetails ? { errorDetails: failure.errorDetails } : {}),
                },
              ],
            },
            httpErrorStatusCode: failure.httpStatus ?? 400,
            httpErrorMessage: HTTP_MESSAGES[failure.httpStatus ?? 400] ?? 'BAD REQUEST',
          }
        : {}),
    });
    for (const wake of op.waiters.splice(0)) wake();
  }

  // ---- accelerator types --------------------------------------------------------------------------------------

  /** https://cloud.google.com/compute/docs/reference/rest/v1/acceleratorTypes/aggregatedList */
  private aggregatedAcceleratorTypes(query: URLSearchParams): { json: unknown } {
    const all = Object.entries(this.zones).flatMap(([zone, types]) =>
      types.map((name, index) => ({ zone, name, index })),
    );
    const page = this.page(all, query);
    const items: Record<string, unknown> = {};
    for (const zone of Object.keys(this.zones)) {
      const zoneUrl = `${API}/projects/${this.project}/zones/${zone}`;
      const here = page.items
        .filter((t) => t.zone === zone)
        .map((t) => ({
          kind: 'compute#acceleratorType',
          id: String(10_000 + t.index),
          creationTimestamp: '1969-12-31T16:00:00.000-08:00',
          name: t.name,
          description: t.name,
          zone: zoneUrl,
          selfLink: `${zoneUrl}/acceleratorTypes/${t.name}`,
          maximumCardsPerInstance: t.name === 'nvidia-l4' || t.name.includes('100') ? 8 : 4,
        }));
      items[`zones/${zone}`] = here.length > 0 ? { acceleratorTypes: here } : noResults(`zones/${zone}`);
    }
    return {
      json: {
        kind: 'compute#acceleratorTypeAggregatedList',
        id: `projects/${this.project}/aggregated/acceleratorTypes`,
        items,
        selfLink: `${API}/projects/${this.project}/aggregated/acceleratorTypes`,
        ...(page.next ? { nextPageToken: page.next } : {}),
      },
    };
  }

  // ---- helpers ------------------------------------------------------------------------------------------------

  /** One page: at most min(`maxResults` (default 500), the fake's page size); the token is an opaque offset. */
  private page<T>(all: readonly T[], query: URLSearchParams): { items: T[]; next: string | undefined } {
    const size = Math.min(Number(query.get('maxResults') ?? 500) || 500, this.options.pageSize ?? 500);
    const token = query.get('pageToken');
    const offset = token
      ? Number(
          Buffer.from(token, 'base64url')
            .toString()
            .replace(/^offset:/, ''),
        )
      : 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new Error("Invalid value for field 'pageToken'");
    const items = all.slice(offset, offset + size);
    const more = offset + size < all.length;
    return { items, next: more ? Buffer.from(`offset:${offset + size}`).toString('base64url') : undefined };
  }

  private later(ms: number, run: () => void): void {
    const timer = this.clock.setTimer(this.clock.now() + ms, () => {
      this.timers.delete(timer);
      run();
    });
    this.timers.add(timer);
  }

  private timestamp(): string {
    return new Date(this.clock.now()).toISOString();
  }
}

const HTTP_MESSAGES: Readonly<Record<number, string>> = {
  400: 'BAD REQUEST',
  403: 'FORBIDDEN',
  409: 'CONFLICT',
  503: 'SERVICE UNAVAILABLE',
};

function noResults(scope: string): Record<string, unknown> {
  return {
    warning: {
      code: 'NO_RESULTS_ON_PAGE',
      message: `There are no results for scope '${scope}' on this page.`,
      data: [{ key: 'scope', value: scope }],
    },
  };
}

/** The synchronous form of a stock-out or quota failure (the bulk API validates some up front). */
function httpFormOf(failure: OperationError): GoogleErrorSpec {
  if (failure.code === 'QUOTA_EXCEEDED')
    return { http: 403, reason: 'quotaExceeded', message: failure.message ?? failure.code };
  if (failure.code.startsWith('ZONE_RESOURCE_POOL_EXHAUSTED'))
    return { http: 503, reason: 'insufficientCapacity', message: failure.message ?? failure.code };
  return { http: failure.httpStatus ?? 400, reason: failure.code, message: failure.message ?? failure.code };
}

function modelOf(i: FakeInstance): 'STANDARD' | 'SPOT' {
  return i.scheduling.provisioningModel === 'SPOT' ? 'SPOT' : 'STANDARD';
}

function regionOf(zone: string): string {
  return zone.slice(0, zone.lastIndexOf('-'));
}

const G2_GPUS: Readonly<Record<string, number>> = { 24: 2, 48: 4, 96: 8 };
const FAMILY_METRICS: ReadonlyArray<readonly [RegExp, string]> = [
  [/^a2-(highgpu|megagpu)-/, 'NVIDIA_A100_GPUS'],
  [/^a2-ultragpu-/, 'NVIDIA_A100_80GB_GPUS'],
  [/^a3-highgpu-/, 'NVIDIA_H100_GPUS'],
  [/^a3-megagpu-/, 'NVIDIA_H100_MEGA_GPUS'],
  [/^a3-ultragpu-/, 'NVIDIA_H200_GPUS'],
  [/^a4-highgpu-/, 'NVIDIA_B200_GPUS'],
];

/** The GPU quota metric a VM counts against, and how many GPUs it holds (spot VMs use the PREEMPTIBLE_ metric). */
function gpuUsage(
  machineType: string,
  accelerators: readonly { acceleratorType: string; acceleratorCount: number }[],
  model: 'STANDARD' | 'SPOT',
): { metric: string; gpus: number } {
  const prefix = model === 'SPOT' ? 'PREEMPTIBLE_' : '';
  const attached = accelerators[0];
  if (attached) {
    const gpu = attached.acceleratorType
      .replace(/^nvidia-(tesla-)?/, '')
      .toUpperCase()
      .replace(/-/g, '_');
    return { metric: `${prefix}NVIDIA_${gpu}_GPUS`, gpus: attached.acceleratorCount };
  }
  const g2 = /^g2-standard-(\d+)$/.exec(machineType);
  if (g2) return { metric: `${prefix}NVIDIA_L4_GPUS`, gpus: G2_GPUS[g2[1] ?? ''] ?? 1 };
  const family = FAMILY_METRICS.find(([pattern]) => pattern.test(machineType));
  const count = Number(/-(\d+)g$/.exec(machineType)?.[1] ?? 0);
  return family ? { metric: `${prefix}${family[1]}`, gpus: count } : { metric: '', gpus: 0 };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * GCE's metadata limits (https://cloud.google.com/compute/docs/metadata/setting-custom-metadata#limitations): keys
 * `[a-zA-Z0-9-_]{1,128}`, each value at most 256 KB, all entries together at most 512 KB.
 */
function checkMetadata(items: readonly { key: string; value: string }[]): string | undefined {
  let total = 0;
  for (const { key, value } of items) {
    if (typeof key !== 'string' || !/^[a-zA-Z0-9_-]{1,128}$/.test(key))
      return `Invalid value for field 'resource.instanceProperties.metadata.items.key': '${key}'`;
    const size = Buffer.byteLength(String(value ?? ''), 'utf8');
    if (size > 262_144)
      return `Invalid value for field 'resource.instanceProperties.metadata.items.value': metadata value '${key}' exceeds 262144 bytes`;
    total += Buffer.byteLength(key, 'utf8') + size;
  }
  return total > 524_288 ? 'Metadata total size exceeds 524288 bytes' : undefined;
}
