/**
 * A wire-level fake of Azure Resource Manager's Microsoft.Compute API for the Azure adapter's tests: HTTPS and JSON on
 * 127.0.0.1, spoken to by the real `@azure/arm-compute` client (its endpoint option points here). It keeps virtual
 * machines in one resource group with finite capacity per size/zone, vCPU quotas, boot and delete delays, long-running
 * operations with `Azure-AsyncOperation` status resources, `nextLink` paging and injectable errors.
 *
 * Shapes follow the REST reference; each route names its page. Common ARM conventions:
 * - errors are `{ "error": { "code", "message", "details"? } }`:
 *   https://github.com/Azure/azure-resource-manager-rpc/blob/master/v1.0/common-api-details.md#error-response-content
 * - long-running operations (201/202 + `Azure-AsyncOperation`/`Location`, status InProgress → Succeeded/Failed/Canceled
 *   with an `error` object): https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/async-operations
 * - throttling is 429 with `Retry-After` in seconds:
 *   https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/request-limits-and-throttling
 *
 * TLS, because the SDK's bearer-token policy refuses plain HTTP: the self-signed certificate beside this file is valid
 * for 127.0.0.1 and localhost until 2126; tests trust it through the client's `tlsOptions.ca`.
 *
 * Time is read from `now()` (wall time by default) lazily on each request, so the fake needs no timers of its own.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

/** The certificate the fake serves; a client must trust it (`tlsOptions: { ca: FAKE_ARM_CA }`). */
export const FAKE_ARM_CA = readFileSync(new URL('./fake-arm-cert.pem', import.meta.url), 'utf8');
const KEY = readFileSync(new URL('./fake-arm-key.pem', import.meta.url), 'utf8');

/** A VM size the subscription can see: where it exists (location → zones; [] for a region without zones). */
export interface FakeSku {
  readonly name: string;
  /** Quota family, e.g. `standardNCADSA100v4Family`. */
  readonly family: string;
  readonly vcpus: number;
  readonly locations: Readonly<Record<string, readonly string[]>>;
  /** Zones where this subscription may not deploy the size (`NotAvailableForSubscription`). */
  readonly restrictedZones?: Readonly<Record<string, readonly string[]>>;
}

/** How many VMs of a size a location/zone can hold at once (default: unlimited). */
export interface FakeCapacity {
  readonly vmSize: string;
  readonly location: string;
  readonly zone?: string;
  /** Applies to Spot VMs only (true), regular only (false), or both (omitted). */
  readonly spot?: boolean;
  readonly count: number;
}

/** A regional vCPU quota: for one family, for Spot ("low priority") VMs, or for all VMs of the location. */
export interface FakeQuota {
  readonly location: string;
  readonly name: string;
  readonly family?: string;
  readonly spot?: boolean;
  readonly limit: number;
}

/** An error answered instead of the real response, `times` times, to requests that match. */
export interface FakeFault {
  readonly method?: 'GET' | 'PUT' | 'DELETE';
  /** Substring of the request path (without query). */
  readonly path?: string;
  /** Substring of the query string (e.g. `$skiptoken` for pages after the first). */
  readonly query?: string;
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly times?: number;
}

/** A creation that will fail asynchronously: its operation ends Failed with this error. */
export interface FakeAllocationFault {
  readonly code: string;
  readonly message: string;
  readonly times?: number;
}

export interface FakeArmOptions {
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  /** The bearer token requests must carry. */
  readonly token: string;
  readonly skus: readonly FakeSku[];
  readonly capacity?: readonly FakeCapacity[];
  readonly quotas?: readonly FakeQuota[];
  /** How long a creation stays InProgress before it succeeds or fails (default 50 ms). */
  readonly allocationDelayMs?: number;
  /** From creation to `PowerState/running` (default 200 ms; at least the allocation delay). */
  readonly bootDelayMs?: number;
  /** How long a deletion (or a Spot eviction) takes (default 50 ms). */
  readonly deleteDelayMs?: number;
  /** Items per list page (default 5). */
  readonly pageSize?: number;
  readonly now?: () => number;
}

type ProvisioningState = 'Creating' | 'Succeeded' | 'Failed' | 'Deleting';

interface FakeVm {
  readonly name: string;
  readonly vmId: string;
  readonly location: string;
  readonly zone: string | undefined;
  readonly vmSize: string;
  readonly spot: boolean;
  readonly createdAt: number;
  /** The request body's properties as sent (what GET echoes back). */
  properties: Record<string, unknown>;
  /** `osProfile.customData` as sent (base64); ARM keeps it for the VM and never returns it. */
  readonly customData: string | undefined;
  tags: Record<string, string>;
  provisioningState: ProvisioningState;
  bootAt: number;
  failure?: { code: string; message: string };
  evicted: boolean;
}

interface Operation {
  readonly id: string;
  readonly location: string;
  readonly startTime: number;
  readonly doneAt: number;
  status: 'InProgress' | 'Succeeded' | 'Failed' | 'Canceled';
  error?: { code: string; message: string };
  /** Applies the operation's effect when it completes; returns the error when it failed. */
  readonly complete: () => { code: string; message: string } | undefined;
}

/** One request as the fake saw it, for assertions. */
export interface FakeRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

const VM_TYPE = 'Microsoft.Compute/virtualMachines';

export class FakeArm {
  readonly requests: FakeRequest[] = [];
  /** VMs created since the start (a PUT on an existing VM does not count). */
  created = 0;
  private readonly vms = new Map<string, FakeVm>();
  private readonly operations = new Map<string, Operation>();
  private readonly faults: { fault: FakeFault; left: number }[] = [];
  private readonly allocationFaults: { fault: FakeAllocationFault; left: number }[] = [];
  private readonly now: () => number;
  private server: Server | undefined;
  private base = '';
  private capacity: readonly FakeCapacity[];

  constructor(private readonly options: FakeArmOptions) {
    this.now = options.now ?? Date.now;
    this.capacity = options.capacity ?? [];
  }

  /** Listens on 127.0.0.1 (a free port); returns the endpoint to give the client. */
  async start(): Promise<string> {
    const server = createServer({ key: KEY, cert: FAKE_ARM_CA }, (req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.base;
  }

  get endpoint(): string {
    return this.base;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  inject(fault: FakeFault): void {
    this.faults.push({ fault, left: fault.times ?? 1 });
  }

  /** The next creation(s) fail asynchronously (their operation ends Failed), e.g. `OverconstrainedAllocationRequest`. */
  failAllocations(fault: FakeAllocationFault): void {
    this.allocationFaults.push({ fault, left: fault.times ?? 1 });
  }

  setCapacity(capacity: readonly FakeCapacity[]): void {
    this.capacity = capacity;
  }

  /** Azure takes a Spot VM back (eviction policy Delete): it goes to Deleting, then disappears. */
  evict(name: string): void {
    this.advance();
    const vm = this.vms.get(name.toLowerCase());
    if (!vm?.spot) throw new Error(`no Spot VM named ${name}`);
    vm.evicted = true;
    this.startDelete(vm);
  }

  /** VMs the fake holds now (including Failed and Deleting ones). */
  virtualMachines(): {
    name: string;
    zone: string | undefined;
    provisioningState: string;
    tags: Record<string, string>;
    properties: Record<string, unknown>;
    customData: string | undefined;
  }[] {
    this.advance();
    return [...this.vms.values()].map((vm) => ({
      name: vm.name,
      zone: vm.zone,
      provisioningState: vm.provisioningState,
      tags: { ...vm.tags },
      properties: structuredClone(vm.properties),
      customData: vm.customData,
    }));
  }

  count(method: string, pathPart: string): number {
    return this.requests.filter((r) => r.method === method && r.path.includes(pathPart)).length;
  }

  // ---- HTTP -------------------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.base);
    const method = req.method ?? 'GET';
    let status = 500;
    try {
      const body = await readBody(req);
      this.advance();
      this.authorize(req);
      const fault = this.takeFault(method, url.pathname, url.search);
      if (fault) throw new HttpError(fault.status, fault.code, fault.message, fault.headers);
      if (!url.searchParams.get('api-version'))
        throw new HttpError(
          400,
          'MissingApiVersionParameter',
          'The api-version query parameter (?api-version=) is required for all requests.',
        );
      const answer = this.route(method, url, body);
      status = answer.status;
      res.writeHead(answer.status, {
        ...(answer.body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
        'x-ms-request-id': randomUUID(),
        ...answer.headers,
      });
      res.end(answer.body === undefined ? undefined : JSON.stringify(answer.body));
    } catch (error) {
      const e =
        error instanceof HttpError
          ? error
          : new HttpError(500, 'InternalServerError', (error as Error).message ?? String(error));
      status = e.status;
      res.writeHead(e.status, { 'content-type': 'application/json; charset=utf-8', ...e.headers });
      res.end(JSON.stringify({ error: { code: e.code, message: e.message } }));
    } finally {
      this.requests.push({ method, path: url.pathname, status });
    }
  }

  private authorize(req: IncomingMessage): void {
    const header = req.headers.authorization;
    if (!header)
      throw new HttpError(
        401,
        'AuthenticationFailed',
        "Authentication failed. The 'Authorization' header is missing.",
        {
          'www-authenticate':
            'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token"',
        },
      );
    if (header !== `Bearer ${this.options.token}`)
      throw new HttpError(401, 'InvalidAuthenticationToken', 'The access token is invalid.', {
        'www-authenticate':
          'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token"',
      });
  }

  private takeFault(method: string, path: string, search: string): FakeFault | undefined {
    for (const entry of this.faults) {
      const f = entry.fault;
      if (entry.left <= 0) continue;
      if (f.method !== undefined && f.method !== method) continue;
      if (f.path !== undefined && !path.includes(f.path)) continue;
      if (f.query !== undefined && !decodeURIComponent(search).includes(f.query)) continue;
      entry.left--;
      return f;
    }
    return undefined;
  }

  private route(
    method: string,
    url: URL,
    body: unknown,
  ): { status: number; body?: unknown; headers?: Record<string, string> } {
    const parts = url.pathname.split('/').filter((p) => p.length > 0);
    const lower = parts.map((p) => p.toLowerCase());
    if (lower[0] !== 'subscriptions' || parts.length < 2)
      throw new HttpError(404, 'InvalidResourceType', `No route for ${url.pathname}.`);
    if (parts[1] !== this.options.subscriptionId)
      throw new HttpError(404, 'SubscriptionNotFound', `The subscription '${parts[1]}' could not be found.`);

    // /subscriptions/{sub}/providers/Microsoft.Compute/skus
    if (
      lower[2] === 'providers' &&
      lower[3] === 'microsoft.compute' &&
      lower[4] === 'skus' &&
      parts.length === 5
    ) {
      if (method !== 'GET') throw methodNotAllowed(method);
      return this.listSkus(url);
    }
    // /subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/operations/{id}
    if (
      lower[2] === 'providers' &&
      lower[3] === 'microsoft.compute' &&
      lower[4] === 'locations' &&
      lower[6] === 'operations' &&
      parts.length === 8
    ) {
      if (method !== 'GET') throw methodNotAllowed(method);
      return this.operationStatus(parts[7] as string, url.searchParams.get('monitor') === 'true');
    }
    // /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines[/{name}[/instanceView]]
    if (lower[2] === 'resourcegroups' && parts.length >= 4) {
      if (lower[3] !== this.options.resourceGroup.toLowerCase())
        throw new HttpError(404, 'ResourceGroupNotFound', `Resource group '${parts[3]}' could not be found.`);
      if (lower[4] === 'providers' && lower[5] === 'microsoft.compute' && lower[6] === 'virtualmachines') {
        if (parts.length === 7) {
          if (method !== 'GET') throw methodNotAllowed(method);
          return this.listVms(url);
        }
        const name = parts[7] as string;
        if (parts.length === 8) {
          if (method === 'GET') return { status: 200, body: this.vmJson(this.existing(name)) };
          if (method === 'PUT') return this.putVm(name, body, url);
          if (method === 'DELETE') return this.deleteVm(name, url);
          throw methodNotAllowed(method);
        }
        if (parts.length === 9 && lower[8] === 'instanceview') {
          if (method !== 'GET') throw methodNotAllowed(method);
          return { status: 200, body: this.instanceView(this.existing(name)) };
        }
      }
    }
    throw new HttpError(404, 'InvalidResourceType', `No route for ${url.pathname}.`);
  }

  // ---- Resource SKUs ----------------------------------------------------------------------------------------------

  /**
   * Resource Skus - List: https://learn.microsoft.com/en-us/rest/api/compute/resource-skus/list
   * `$filter=location eq '{location}'` is the one filter supported; answers `{ value: ResourceSku[], nextLink? }`.
   */
  private listSkus(url: URL): { status: number; body: unknown } {
    const filter = url.searchParams.get('$filter');
    let location: string | undefined;
    if (filter) {
      const match = /^\s*location\s+eq\s+'([^']+)'\s*$/i.exec(filter);
      if (!match) throw new HttpError(400, 'InvalidFilter', `Unsupported $filter: ${filter}`);
      location = (match[1] as string).toLowerCase();
    }
    const items: unknown[] = [];
    for (const sku of this.options.skus)
      for (const [loc, zones] of Object.entries(sku.locations)) {
        if (location !== undefined && loc !== location) continue;
        const restricted = sku.restrictedZones?.[loc] ?? [];
        items.push({
          resourceType: 'virtualMachines',
          name: sku.name,
          tier: 'Standard',
          size: sku.name.replace(/^Standard_/, ''),
          family: sku.family,
          locations: [loc],
          locationInfo: [{ location: loc, zones: [...zones], zoneDetails: [] }],
          capabilities: [{ name: 'vCPUs', value: String(sku.vcpus) }],
          restrictions:
            restricted.length === 0
              ? []
              : [
                  {
                    type: 'Zone',
                    values: [loc],
                    restrictionInfo: { locations: [loc], zones: [...restricted] },
                    reasonCode: 'NotAvailableForSubscription',
                  },
                ],
        });
      }
    return { status: 200, body: this.page(items, url) };
  }

  // ---- Virtual machines -------------------------------------------------------------------------------------------

  /**
   * Virtual Machines - List: https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/list
   * `{ value: VirtualMachine[], nextLink? }`; the next page is asked for by GET on `nextLink` (here `$skiptoken`).
   */
  private listVms(url: URL): { status: number; body: unknown } {
    const vms = [...this.vms.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return {
      status: 200,
      body: this.page(
        vms.map((vm) => this.vmJson(vm)),
        url,
      ),
    };
  }

  /**
   * Virtual Machines - Create Or Update: https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/create-or-update
   * 201 with the VM (`provisioningState: Creating`) and `Azure-AsyncOperation` for a new VM; 200 for a PUT on an existing
   * one (idempotent by name). Quota is checked at once (409 `OperationNotAllowed`), an unavailable size too (409
   * `SkuNotAvailable`, https://learn.microsoft.com/en-us/azure/azure-resource-manager/troubleshooting/error-sku-not-available);
   * lack of capacity shows when the operation ends Failed with `ZonalAllocationFailed`/`AllocationFailed`
   * (https://learn.microsoft.com/en-us/troubleshoot/azure/virtual-machines/windows/allocation-failure).
   */
  private putVm(
    name: string,
    body: unknown,
    url: URL,
  ): { status: number; body: unknown; headers?: Record<string, string> } {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}[a-zA-Z0-9_]$/.test(name))
      throw new HttpError(400, 'InvalidParameter', `The resource name '${name}' is invalid.`);
    const input = asObject(body, 'body');
    const location = String(input.location ?? '').toLowerCase();
    if (!location)
      throw new HttpError(400, 'LocationRequired', 'The location property is required for this definition.');
    const properties = asObject(input.properties ?? {}, 'properties');
    const vmSize = String(
      asObject(properties.hardwareProfile ?? {}, 'properties.hardwareProfile').vmSize ?? '',
    );
    const zones = Array.isArray(input.zones) ? input.zones.map(String) : [];
    if (zones.length > 1)
      throw new HttpError(
        400,
        'InvalidParameter',
        'A virtual machine can be placed in one availability zone only.',
      );
    const zone = zones[0];
    const spot = properties.priority === 'Spot';
    if (spot && properties.evictionPolicy === undefined)
      throw new HttpError(
        400,
        'InvalidParameter',
        'An eviction policy is required for Spot virtual machines.',
      );
    const tags = asTags(input.tags);
    const customData = customDataOf(properties);

    const found = this.vms.get(name.toLowerCase());
    if (found) return this.putExisting(found, { location, zone, vmSize, tags, customData }, url);

    const sku = this.options.skus.find((s) => s.name.toLowerCase() === vmSize.toLowerCase());
    const skuZones = sku?.locations[location];
    if (!sku || !skuZones)
      throw new HttpError(
        409,
        'SkuNotAvailable',
        `The requested VM size '${vmSize}' is currently not available in location '${location}'. Please try another size or deploy to a different location or different zone. See https://aka.ms/azureskunotavailable for details.`,
      );
    if (zone !== undefined && !skuZones.includes(zone))
      throw new HttpError(
        400,
        'InvalidParameter',
        `The zone(s) '${zone}' for resource '${name}' is not supported in location '${location}'.`,
      );
    if (zone !== undefined && (sku.restrictedZones?.[location] ?? []).includes(zone))
      throw new HttpError(
        409,
        'SkuNotAvailable',
        `The requested VM size '${vmSize}' is currently not available in location '${location}' zones '${zone}' for subscription '${this.options.subscriptionId}'. Please try another size or deploy to a different location or zones. See https://aka.ms/azureskunotavailable for details.`,
      );
    this.checkQuota(sku, location, spot);

    const now = this.now();
    const vm: FakeVm = {
      name,
      vmId: randomUUID(),
      location,
      zone,
      vmSize: sku.name,
      spot,
      createdAt: now,
      properties: withoutSecrets(properties),
      customData,
      tags,
      provisioningState: 'Creating',
      bootAt: now + Math.max(this.bootDelay(), this.allocationDelay()),
      evicted: false,
    };
    const failure = this.allocationFailure(vm);
    this.vms.set(name.toLowerCase(), vm);
    this.created++;
    const op = this.startCreate(vm, failure);
    return { status: 201, body: this.vmJson(vm), headers: this.asyncHeaders(op, url) };
  }

  private putExisting(
    vm: FakeVm,
    wanted: {
      location: string;
      zone: string | undefined;
      vmSize: string;
      tags: Record<string, string>;
      customData: string | undefined;
    },
    url: URL,
  ): { status: number; body: unknown; headers?: Record<string, string> } {
    if (wanted.location !== vm.location)
      throw new HttpError(409, 'PropertyChangeNotAllowed', "Changing property 'location' is not allowed.");
    if (wanted.zone !== vm.zone)
      throw new HttpError(409, 'PropertyChangeNotAllowed', "Changing property 'zones' is not allowed.");
    // customData cannot change after creation; a PUT without it (a GET-modify-PUT, since GET never shows it) keeps it.
    if (wanted.customData !== undefined && wanted.customData !== vm.customData)
      throw new HttpError(409, 'PropertyChangeNotAllowed', "Changing property 'customData' is not allowed.");
    if (wanted.vmSize.toLowerCase() !== vm.vmSize.toLowerCase())
      throw new HttpError(
        409,
        'OperationNotAllowed',
        'Resizing a virtual machine with a PUT while it is allocated is not supported by this fake.',
      );
    if (vm.provisioningState === 'Deleting')
      throw new HttpError(
        409,
        'OperationNotAllowed',
        `Operation 'PUT' is not allowed on VM '${vm.name}' since the VM is marked for deletion.`,
      );
    vm.tags = wanted.tags;
    const pending = [...this.operations.values()].find(
      (op) => op.status === 'InProgress' && op.id.startsWith(`create-${vm.vmId}`),
    );
    if (pending) return { status: 200, body: this.vmJson(vm), headers: this.asyncHeaders(pending, url) };
    if (vm.provisioningState === 'Failed') {
      // A PUT on a VM whose creation failed tries the allocation again, as Azure does.
      const sku = this.options.skus.find((s) => s.name === vm.vmSize);
      if (sku) this.checkQuota(sku, vm.location, vm.spot);
      vm.provisioningState = 'Creating';
      vm.failure = undefined;
      vm.bootAt = this.now() + Math.max(this.bootDelay(), this.allocationDelay());
      const op = this.startCreate(vm, this.allocationFailure(vm));
      return { status: 200, body: this.vmJson(vm), headers: this.asyncHeaders(op, url) };
    }
    return { status: 200, body: this.vmJson(vm) };
  }

  /**
   * Virtual Machines - Delete: https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/delete
   * 202 with `Location` and `Azure-AsyncOperation` while the VM is deleted; 204 when there is no such VM.
   */
  private deleteVm(name: string, url: URL): { status: number; headers?: Record<string, string> } {
    const vm = this.vms.get(name.toLowerCase());
    if (!vm) return { status: 204 };
    const op = this.startDelete(vm);
    return { status: 202, headers: this.asyncHeaders(op, url) };
  }

  /** Virtual Machines - Instance View: https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/instance-view */
  private instanceView(vm: FakeVm): unknown {
    const now = this.now();
    const statuses: unknown[] = [];
    const state = vm.provisioningState;
    statuses.push(
      vm.failure
        ? {
            code: `ProvisioningState/failed/${vm.failure.code}`,
            level: 'Error',
            displayStatus: 'Provisioning failed',
            message: vm.failure.message,
            time: new Date(vm.createdAt).toISOString(),
          }
        : {
            code: `ProvisioningState/${state.toLowerCase()}`,
            level: 'Info',
            displayStatus: `Provisioning ${state === 'Succeeded' ? 'succeeded' : state.toLowerCase()}`,
            time: new Date(vm.createdAt).toISOString(),
          },
    );
    const power =
      state === 'Succeeded'
        ? now >= vm.bootAt
          ? 'running'
          : 'starting'
        : state === 'Deleting'
          ? 'deallocating'
          : state === 'Failed'
            ? 'deallocated'
            : undefined;
    if (power) statuses.push({ code: `PowerState/${power}`, level: 'Info', displayStatus: `VM ${power}` });
    return { computerName: vm.name, platformFaultDomain: 0, statuses };
  }

  /**
   * The async operation status resource behind `Azure-AsyncOperation` (and, with `monitor=true`, behind `Location`:
   * 202 while running, 200 when done). https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/async-operations
   */
  private operationStatus(
    id: string,
    monitor: boolean,
  ): { status: number; body?: unknown; headers?: Record<string, string> } {
    const op = this.operations.get(id);
    if (!op) throw new HttpError(404, 'NotFound', `The operation '${id}' could not be found.`);
    if (monitor) return op.status === 'InProgress' ? { status: 202 } : { status: 200 };
    return {
      status: 200,
      body: {
        name: op.id,
        status: op.status,
        startTime: new Date(op.startTime).toISOString(),
        ...(op.status === 'InProgress' ? {} : { endTime: new Date(op.doneAt).toISOString() }),
        ...(op.error ? { error: op.error } : {}),
      },
    };
  }

  // ---- Lifecycle --------------------------------------------------------------------------------------------------

  private startCreate(vm: FakeVm, failure: { code: string; message: string } | undefined): Operation {
    return this.addOperation(`create-${vm.vmId}-${randomUUID()}`, vm.location, this.allocationDelay(), () => {
      if (vm.provisioningState !== 'Creating') {
        return {
          code: 'OperationPreempted',
          message: `Operation 'PUT' on VM '${vm.name}' was preempted by a later DELETE.`,
        };
      }
      if (failure) {
        vm.provisioningState = 'Failed';
        vm.failure = failure;
        return failure;
      }
      vm.provisioningState = 'Succeeded';
      return undefined;
    });
  }

  private startDelete(vm: FakeVm): Operation {
    const pending = [...this.operations.values()].find(
      (op) => op.status === 'InProgress' && op.id.startsWith(`delete-${vm.vmId}`),
    );
    if (pending) return pending;
    vm.provisioningState = 'Deleting';
    return this.addOperation(`delete-${vm.vmId}-${randomUUID()}`, vm.location, this.deleteDelay(), () => {
      this.vms.delete(vm.name.toLowerCase());
      return undefined;
    });
  }

  private addOperation(
    id: string,
    location: string,
    delayMs: number,
    complete: Operation['complete'],
  ): Operation {
    const now = this.now();
    const op: Operation = {
      id,
      location,
      startTime: now,
      doneAt: now + delayMs,
      status: 'InProgress',
      complete,
    };
    this.operations.set(id, op);
    return op;
  }

  /** Completes every operation whose time has come, in the order they were due. */
  private advance(): void {
    const now = this.now();
    const due = [...this.operations.values()]
      .filter((op) => op.status === 'InProgress' && op.doneAt <= now)
      .sort((a, b) => a.doneAt - b.doneAt);
    for (const op of due) {
      const error = op.complete();
      op.status = error ? 'Failed' : 'Succeeded';
      if (error) op.error = error;
    }
  }

  private asyncHeaders(op: Operation, url: URL): Record<string, string> {
    const apiVersion = url.searchParams.get('api-version') ?? '';
    const path = `${this.base}/subscriptions/${this.options.subscriptionId}/providers/Microsoft.Compute/locations/${op.location}/operations/${op.id}`;
    return {
      'azure-asyncoperation': `${path}?p=${randomUUID()}&api-version=${apiVersion}`,
      location: `${path}?p=${randomUUID()}&monitor=true&api-version=${apiVersion}`,
    };
  }

  /** Capacity is taken at PUT time; a VM beyond it fails when its operation ends. */
  private allocationFailure(vm: FakeVm): { code: string; message: string } | undefined {
    const injected = this.allocationFaults.find((entry) => entry.left > 0);
    if (injected) {
      injected.left--;
      return { code: injected.fault.code, message: injected.fault.message };
    }
    const rule = this.capacity.find(
      (c) =>
        c.vmSize.toLowerCase() === vm.vmSize.toLowerCase() &&
        c.location === vm.location &&
        (c.zone === undefined || c.zone === vm.zone) &&
        (c.spot === undefined || c.spot === vm.spot),
    );
    if (!rule) return undefined;
    let used = 0;
    for (const other of this.vms.values())
      if (
        other.vmSize === vm.vmSize &&
        other.location === vm.location &&
        other.zone === vm.zone &&
        other.spot === vm.spot &&
        other.provisioningState !== 'Failed'
      )
        used++;
    if (used < rule.count) return undefined;
    return vm.zone === undefined
      ? {
          code: 'AllocationFailed',
          message:
            'Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance',
        }
      : {
          code: 'ZonalAllocationFailed',
          message: `Allocation failed. We do not have sufficient capacity for the requested VM size in this zone. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance`,
        };
  }

  /**
   * Azure's vCPU quota error, checked when the PUT arrives:
   * https://learn.microsoft.com/en-us/azure/azure-resource-manager/templates/error-resource-quota (the message format is
   * the one ARM returns for regional and per-family vCPU quotas).
   */
  private checkQuota(sku: FakeSku, location: string, spot: boolean): void {
    for (const quota of this.options.quotas ?? []) {
      if (quota.location !== location) continue;
      if (quota.family !== undefined && quota.family !== sku.family) continue;
      if (quota.spot !== undefined && quota.spot !== spot) continue;
      let usage = 0;
      for (const vm of this.vms.values()) {
        if (vm.location !== location || vm.provisioningState === 'Failed') continue;
        const other = this.options.skus.find((s) => s.name === vm.vmSize);
        if (!other) continue;
        if (quota.family !== undefined && quota.family !== other.family) continue;
        if (quota.spot !== undefined && quota.spot !== vm.spot) continue;
        usage += other.vcpus;
      }
      if (usage + sku.vcpus > quota.limit)
        throw new HttpError(
          409,
          'OperationNotAllowed',
          `Operation could not be completed as it results in exceeding approved ${quota.name} quota. Additional details - Deployment Model: Resource Manager, Location: ${location}, Current Limit: ${quota.limit}, Current Usage: ${usage}, Additional Required: ${sku.vcpus}, (Minimum) New Limit Required: ${usage + sku.vcpus}. Submit a request for Quota increase at https://aka.ms/ProdportalCRP by specifying parameters listed in the 'Details' section for deployment to succeed.`,
        );
    }
  }

  // ---- Representation ---------------------------------------------------------------------------------------------

  private existing(name: string): FakeVm {
    const vm = this.vms.get(name.toLowerCase());
    if (!vm)
      throw new HttpError(
        404,
        'ResourceNotFound',
        `The Resource '${VM_TYPE}/${name}' under resource group '${this.options.resourceGroup}' was not found.`,
      );
    return vm;
  }

  /** Virtual Machines - Get: https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/get */
  private vmJson(vm: FakeVm): unknown {
    return {
      name: vm.name,
      id: `/subscriptions/${this.options.subscriptionId}/resourceGroups/${this.options.resourceGroup}/providers/${VM_TYPE}/${vm.name}`,
      type: VM_TYPE,
      location: vm.location,
      tags: { ...vm.tags },
      ...(vm.zone === undefined ? {} : { zones: [vm.zone] }),
      properties: {
        ...vm.properties,
        vmId: vm.vmId,
        provisioningState: vm.provisioningState,
        timeCreated: new Date(vm.createdAt).toISOString(),
      },
    };
  }

  private page(items: readonly unknown[], url: URL): { value: unknown[]; nextLink?: string } {
    const size = this.options.pageSize ?? 5;
    const skip = Number(url.searchParams.get('$skiptoken') ?? '0');
    const value = items.slice(skip, skip + size);
    if (skip + size >= items.length) return { value };
    const next = new URL(url.pathname, this.base);
    for (const [k, v] of url.searchParams) if (k !== '$skiptoken') next.searchParams.set(k, v);
    next.searchParams.set('$skiptoken', String(skip + size));
    return { value, nextLink: next.toString() };
  }

  private allocationDelay(): number {
    return this.options.allocationDelayMs ?? 50;
  }

  private bootDelay(): number {
    return this.options.bootDelayMs ?? 200;
  }

  private deleteDelay(): number {
    return this.options.deleteDelayMs ?? 50;
  }
}

function methodNotAllowed(method: string): HttpError {
  return new HttpError(405, 'MethodNotAllowed', `The method '${method}' is not allowed here.`);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  if (chunks.length === 0) return undefined;
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(
      400,
      'InvalidRequestContent',
      'The request content was invalid and could not be deserialized.',
    );
  }
}

function asObject(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new HttpError(400, 'InvalidRequestContent', `'${field}' must be an object.`);
  return value as Record<string, unknown>;
}

/** Tag limits: https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/tag-resources#limitations */
function asTags(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  const tags = asObject(value, 'tags');
  const entries = Object.entries(tags);
  if (entries.length > 50) throw new HttpError(400, 'InvalidTag', 'A resource can have at most 50 tags.');
  for (const [k, v] of entries) {
    if (typeof v !== 'string')
      throw new HttpError(400, 'InvalidTag', `The value of tag '${k}' must be a string.`);
    if (k.length === 0 || k.length > 512 || /[<>%&\\?/]/.test(k))
      throw new HttpError(
        400,
        'InvalidTagNameCharacters',
        `The tag name '${k}' has invalid characters or length.`,
      );
    if (v.length > 256)
      throw new HttpError(400, 'InvalidTag', `The value of tag '${k}' is longer than 256 characters.`);
  }
  return Object.fromEntries(entries) as Record<string, string>;
}

/**
 * `osProfile.customData`: base64 decoding to at most 65,535 bytes (osProfile.customData in the REST reference; the
 * message is ARM's own).
 */
function customDataOf(properties: Record<string, unknown>): string | undefined {
  const osProfile = properties.osProfile;
  if (typeof osProfile !== 'object' || osProfile === null) return undefined;
  const value = (osProfile as Record<string, unknown>).customData;
  if (value === undefined) return undefined;
  if (
    typeof value !== 'string' ||
    value.length % 4 !== 0 ||
    !/^[A-Za-z0-9+/]*={0,2}$/.test(value) ||
    Buffer.from(value, 'base64').length > 65_535
  )
    throw new HttpError(
      400,
      'InvalidParameter',
      'Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 characters.',
    );
  return value;
}

/** ARM never echoes secrets (the SSH key stays, passwords and custom data do not). */
function withoutSecrets(properties: Record<string, unknown>): Record<string, unknown> {
  const { osProfile, userData: _userData, ...rest } = properties;
  if (typeof osProfile !== 'object' || osProfile === null) return rest;
  const { adminPassword: _password, customData: _customData, ...os } = osProfile as Record<string, unknown>;
  return { ...rest, osProfile: os };
}
