/**
 * Leases: N GPUs of a type for a tenant until released. A lease is served at once from free GPUs of running
 * instances (the warm buffer) when they fit; otherwise it waits `pending` (and wakes the control loop) until
 * capacity arrives; it `failed` with a reason when no offering could ever serve it. A ready lease whose instance
 * goes away (reclaimed spot, failure) moves to free GPUs; when none fit it goes back to `pending` without GPUs (and
 * unbilled) until replacement capacity serves it, for at most the policy's `leaseReplaceTimeoutMs`, then fails with
 * the reason. Every change is written to the database before it is applied in memory, and allocation runs one lease
 * at a time.
 */
import { and, asc, eq, inArray } from 'drizzle-orm';
import type { Clock } from '../lib/clock.ts';
import { NotFoundError, ValidationError } from '../lib/errors.ts';
import type { IdGenerator } from '../lib/ids.ts';
import { jsonEqual } from '../lib/json-equal.ts';
import { microsToUsd, usdToMicros } from '../lib/money.ts';
import type { Offering } from '../providers/catalog/offering.ts';
import { regionGroupOf } from '../providers/catalog/region-groups.ts';
import { type Allocation, findAllocation, type LeaseWants, serves, shareOf, total } from './allocate.ts';
import { type Lease, type LeaseRequest, leaseRequestSchema } from './api/schemas.ts';
import type { Database } from './db/open-database.ts';
import { leaseAllocations, leases, tenants } from './db/schema.ts';
import { type Demand, sumDemand } from './demand.ts';
import type { Fleet } from './fleet.ts';
import type { BrokerPolicy } from './policy.ts';
import { SerialQueue } from './serial-queue.ts';
import type { Principal } from './tokens.ts';

type LeaseRow = typeof leases.$inferSelect;

export interface LeaseServiceOptions {
  /** Where an instance's machine can be reached, when its agent said (shown in allocations). */
  readonly addressOf?: (instanceId: string) => string | undefined;
  readonly db: Database;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly fleet: Fleet;
  /** Offerings the providers sell now. */
  readonly offerings: () => readonly Offering[];
  readonly policy: () => BrokerPolicy;
  /** Called when a lease cannot be served from what is running (the loop re-plans, debounced). */
  readonly onShortfall: () => void;
  /** Called when a lease becomes ready, with the ms it waited. */
  readonly onReady?: (waitedMs: number, lease: LeaseRow) => void;
  /**
   * Called after a lease's GPUs change, once the change is stored: it got GPUs, moved, or ended (no allocations).
   * The meter opens and closes the lease's usage intervals from this.
   */
  readonly onAllocations?: (lease: LeaseRow, allocations: readonly Allocation[], atMs: number) => void;
}

export type { LeaseRow };

/** The reason a lease that lost its GPUs carries while it waits for replacement capacity. */
const WAITING = 'waiting for replacement capacity: ';

/** A lease that lost its GPUs and waits for replacement capacity: since when, and why. */
interface Replacing {
  readonly sinceMs: number;
  readonly cause: string;
}

export class LeaseService {
  /** Counts every stored change of a lease (made, served, moved, ended): a cheap "did anything change?". */
  changes = 0;
  private readonly open = new Map<string, LeaseRow>();
  /** Pending leases that were ready and lost their GPUs, by lease id. */
  private readonly replacing = new Map<string, Replacing>();
  /** Long polls waiting for a lease to leave pending, by lease id (see waitWhilePending). */
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly queue = new SerialQueue();

  constructor(private readonly o: LeaseServiceOptions) {}

  /**
   * Loads pending and ready leases (after the fleet has loaded its allocations). A pending lease that was ready
   * before waits for replacement capacity: the time it lost its GPUs is not stored, so its `leaseReplaceTimeoutMs`
   * counts again from now.
   */
  async load(): Promise<void> {
    this.open.clear();
    this.replacing.clear();
    const now = this.o.clock.now();
    const rows = await this.o.db
      .select()
      .from(leases)
      .where(inArray(leases.status, ['pending', 'ready']))
      .orderBy(asc(leases.createdAt), asc(leases.id));
    for (const row of rows) {
      this.open.set(row.id, row);
      if (row.status === 'pending' && row.readyAt !== null) {
        const reason = row.reason ?? '';
        const cause = reason.startsWith(WAITING) ? reason.slice(WAITING.length) : reason;
        this.replacing.set(row.id, { sinceMs: now, cause });
      }
    }
  }

  /** Creates a lease (or returns the one made earlier with the same idempotency key) and tries to serve it. */
  async request(principal: Principal, request: LeaseRequest): Promise<{ lease: Lease; created: boolean }> {
    return this.queue.run(async () => {
      if (request.idempotencyKey !== undefined) {
        const [existing] = await this.o.db
          .select()
          .from(leases)
          .where(
            and(eq(leases.tenantId, principal.tenantId), eq(leases.idempotencyKey, request.idempotencyKey)),
          );
        if (existing) {
          if (!sameRequest(existing.request, request))
            throw new ValidationError('idempotencyKey', 'was used before for a different lease request');
          return { lease: await this.view(existing), created: false };
        }
      }
      const offerings = this.o.offerings();
      if (!offerings.some((o) => o.gpu === request.gpu))
        throw new ValidationError('gpu', `no provider offers "${request.gpu}"`);
      const now = this.o.clock.now();
      const row: LeaseRow = {
        id: this.o.ids.next('lease'),
        tenantId: principal.tenantId,
        idempotencyKey: request.idempotencyKey ?? null,
        request,
        gpu: request.gpu,
        count: request.count,
        status: 'pending',
        reason: null,
        microsPerHour: null,
        createdAt: now,
        readyAt: null,
        endedAt: null,
        expiresAt: request.ttlSeconds === undefined ? null : now + request.ttlSeconds * 1000,
      };
      // The quota as it is now (an operator may have changed it since the token was checked).
      const [tenant] = await this.o.db
        .select({ gpuQuota: tenants.gpuQuota })
        .from(tenants)
        .where(eq(tenants.id, principal.tenantId));
      const impossible = this.whyImpossible(principal, tenant?.gpuQuota ?? null, request, offerings);
      if (impossible) {
        row.status = 'failed';
        row.reason = impossible;
        row.endedAt = now;
      }
      await this.o.db.insert(leases).values(row);
      this.changes++;
      if (row.status === 'pending') {
        this.open.set(row.id, row);
        if (!(await this.tryServe(row))) this.o.onShortfall();
      }
      return { lease: await this.view(row), created: true };
    });
  }

  async get(principal: Principal, id: string): Promise<Lease> {
    return this.view(await this.owned(principal, id));
  }

  /**
   * The lease, once it is no longer pending or `waitMs` passed (a long poll: clients wait for a lease as they wait
   * for a call, without asking every few hundred milliseconds).
   */
  async waitWhilePending(principal: Principal, id: string, waitMs: number): Promise<Lease> {
    const lease = await this.get(principal, id);
    if (lease.status !== 'pending' || waitMs <= 0) return lease;
    await new Promise<void>((resolve) => {
      const waiters = this.waiters.get(id) ?? new Set<() => void>();
      this.waiters.set(id, waiters);
      const done = () => {
        timer.cancel();
        waiters.delete(done);
        if (waiters.size === 0 && this.waiters.get(id) === waiters) this.waiters.delete(id);
        resolve();
      };
      const timer = this.o.clock.setTimer(this.o.clock.now() + waitMs, done);
      waiters.add(done);
    });
    return this.get(principal, id);
  }

  /** Wakes the long polls of a lease whose status just changed. */
  private statusChanged(id: string): void {
    this.changes++;
    for (const wake of [...(this.waiters.get(id) ?? [])]) wake();
  }

  /** The principal's leases (an operator's: everyone's), oldest first, each naming its tenant. */
  async list(principal: Principal): Promise<Lease[]> {
    const rows = await this.o.db
      .select({ lease: leases, tenant: tenants.name })
      .from(leases)
      .innerJoin(tenants, eq(tenants.id, leases.tenantId))
      .where(principal.role === 'operator' ? undefined : eq(leases.tenantId, principal.tenantId))
      .orderBy(asc(leases.createdAt), asc(leases.id));
    return Promise.all(rows.map(async (row) => ({ ...(await this.view(row.lease)), tenant: row.tenant })));
  }

  /** Ends a lease; releasing an ended lease changes nothing. */
  async release(principal: Principal, id: string): Promise<Lease> {
    return this.queue.run(async () => {
      const row = await this.owned(principal, id);
      if (row.status === 'pending' || row.status === 'ready') await this.end(row, 'released', null);
      return this.view((await this.find(id)) ?? row);
    });
  }

  /** Serves waiting leases, oldest first, from what is free now; returns how many became ready. */
  async servePending(): Promise<number> {
    return this.queue.run(async () => {
      let served = 0;
      for (const row of [...this.open.values()])
        if (row.status === 'pending' && (await this.tryServe(row))) served++;
      return served;
    });
  }

  /**
   * Ends leases whose TTL has passed, and fails those that waited for replacement capacity longer than the policy's
   * `leaseReplaceTimeoutMs`; returns how many ended.
   */
  async expire(): Promise<number> {
    return this.queue.run(async () => {
      const now = this.o.clock.now();
      const due = [...this.open.values()].filter((row) => row.expiresAt !== null && row.expiresAt <= now);
      for (const row of due) await this.end(row, 'expired', 'its ttlSeconds passed');
      const timeoutMs = this.o.policy().leaseReplaceTimeoutMs;
      let failed = 0;
      for (const [id, { sinceMs, cause }] of [...this.replacing]) {
        const row = this.open.get(id);
        if (row?.status !== 'pending' || sinceMs + timeoutMs > now) continue;
        await this.end(row, 'failed', `${cause}; no replacement capacity within ${timeoutMs} ms`);
        failed++;
      }
      return due.length + failed;
    });
  }

  /**
   * An instance is going away (reclaimed spot, failure): its leases move to free GPUs when they fit; otherwise they
   * give up their GPUs and wait `pending` for replacement capacity (the control loop is woken to buy it), or fail
   * with the reason at once when the policy's `leaseReplaceTimeoutMs` is 0.
   */
  async evacuate(instanceId: string, reason: string): Promise<void> {
    await this.queue.run(async () => {
      for (const leaseId of this.o.fleet.leasesOn(instanceId)) {
        const row = this.open.get(leaseId);
        if (!row) continue;
        const wants = this.wants(row.request as LeaseRequest);
        const candidates = this.o.fleet.freeGpus().filter((c) => c.instanceId !== instanceId);
        const kept = await this.allocationsOf(row.id);
        const stays = kept.filter((a) => a.instanceId !== instanceId);
        // Only the part on the lost instance moves; the rest of the lease stays where it is.
        const lostGpus = kept
          .filter((a) => a.instanceId === instanceId)
          .reduce((n, a) => n + a.gpuIndices.length, 0);
        const moved =
          wants.placement === 'any'
            ? findAllocation({ ...wants, count: lostGpus, maxMicrosPerHour: undefined }, candidates)
            : undefined;
        const whole = moved
          ? undefined
          : findAllocation({ ...wants, maxMicrosPerHour: undefined }, candidates);
        const next = moved ? [...stays, ...moved] : whole;
        if (!next) {
          if (this.o.policy().leaseReplaceTimeoutMs === 0)
            await this.end(row, 'failed', `${reason}; no free capacity to move the lease to`);
          else await this.waitForReplacement(row, reason);
          continue;
        }
        await this.o.db.transaction(async (tx) => {
          await tx.delete(leaseAllocations).where(eq(leaseAllocations.leaseId, row.id));
          await tx
            .insert(leaseAllocations)
            .values(
              next.map((a) => ({ leaseId: row.id, instanceId: a.instanceId, gpuIndices: a.gpuIndices })),
            );
          await tx
            .update(leases)
            .set({ microsPerHour: total(next), reason: `moved: ${reason}` })
            .where(eq(leases.id, row.id));
        });
        this.o.fleet.free(row.id);
        for (const a of next) this.o.fleet.allocate(row.id, a.instanceId, a.gpuIndices);
        row.microsPerHour = total(next);
        row.reason = `moved: ${reason}`;
        this.changes++;
        this.o.onAllocations?.(row, next, this.o.clock.now());
      }
    });
  }

  /** Demand of open leases, for the forecast: GPUs per (type, region group, gang size). */
  openDemand(): Demand[] {
    const policy = this.o.policy();
    return sumDemand(
      [...this.open.values()].map((row) => {
        const request = row.request as LeaseRequest;
        const region = request.regions?.[0];
        const vendor = request.vendors?.[0] ?? '';
        const regionGroup =
          (region ? regionGroupOf(vendor, region, policy.regionGroups) : undefined) ??
          policy.defaultRegionGroup;
        const gangSize = request.placement === 'single-node' ? request.count : 1;
        return { gpu: request.gpu, regionGroup, gangSize, gpus: request.count };
      }),
    );
  }

  /** Ready leases with their allocations (for the meter to resume them after a restart). */
  async readyWithAllocations(): Promise<{ lease: LeaseRow; allocations: Allocation[] }[]> {
    const ready = [...this.open.values()].filter((row) => row.status === 'ready');
    return Promise.all(
      ready.map(async (lease) => ({ lease, allocations: await this.allocationsOf(lease.id) })),
    );
  }

  /** Open leases of a tenant (every tenant's when undefined). */
  openOf(tenantId: string | undefined): LeaseRow[] {
    return [...this.open.values()].filter((row) => tenantId === undefined || row.tenantId === tenantId);
  }

  /** Ends a lease on the broker's own decision (spend limit), with the reason. */
  async endFor(leaseId: string, reason: string): Promise<void> {
    await this.queue.run(async () => {
      const row = this.open.get(leaseId);
      if (row) await this.end(row, 'released', reason);
    });
  }

  counts(): { pending: number; ready: number } {
    let pending = 0;
    let ready = 0;
    for (const row of this.open.values())
      if (row.status === 'pending') pending++;
      else ready++;
    return { pending, ready };
  }

  // ---- internals ----------------------------------------------------------------------------------------------

  private whyImpossible(
    principal: Principal,
    gpuQuota: number | null,
    request: LeaseRequest,
    offerings: readonly Offering[],
  ): string | undefined {
    const wants = this.wants(request);
    const matching = offerings.filter((o) => serves(wants, o));
    if (matching.length === 0)
      return `no offering of ${request.gpu} matches the requested regions, vendors and capacity type`;
    if (request.placement === 'single-node') {
      const largest = Math.max(...matching.map((o) => o.gpusPerInstance));
      if (largest < request.count)
        return `no offering has ${request.count} ${request.gpu} GPUs on one node (the largest has ${largest})`;
    }
    if (gpuQuota !== null) {
      let held = 0;
      for (const row of this.open.values()) if (row.tenantId === principal.tenantId) held += row.count;
      if (held + request.count > gpuQuota)
        return `above the tenant's GPU quota: ${held} held, ${request.count} requested, quota ${gpuQuota}`;
    }
    if (wants.maxMicrosPerHour !== undefined) {
      const cheapestPerGpu = Math.min(...matching.map((o) => o.microsPerHour / o.gpusPerInstance));
      const cheapest = Math.round(cheapestPerGpu * request.count);
      if (cheapest > wants.maxMicrosPerHour)
        return `above maxUsdPerHour: the cheapest ${request.count} × ${request.gpu} cost $${microsToUsd(cheapest).toFixed(2)}/h`;
    }
    return undefined;
  }

  private wants(request: LeaseRequest): LeaseWants {
    return {
      gpu: request.gpu,
      count: request.count,
      placement: request.placement,
      regions: request.regions,
      vendors: request.vendors,
      capacityType: request.capacityType,
      maxMicrosPerHour: request.maxUsdPerHour === undefined ? undefined : usdToMicros(request.maxUsdPerHour),
    };
  }

  /**
   * A ready lease lost (part of) its GPUs and none can take it now: it gives up all of them and waits `pending`,
   * unbilled, for replacement capacity. It keeps its `readyAt` (it was ready then), which marks it as replacing
   * after a restart too.
   */
  private async waitForReplacement(row: LeaseRow, cause: string): Promise<void> {
    const now = this.o.clock.now();
    const reason = `${WAITING}${cause}`;
    await this.o.db.transaction(async (tx) => {
      await tx.delete(leaseAllocations).where(eq(leaseAllocations.leaseId, row.id));
      await tx
        .update(leases)
        .set({ status: 'pending', reason, microsPerHour: null })
        .where(eq(leases.id, row.id));
    });
    this.o.fleet.free(row.id);
    row.status = 'pending';
    row.reason = reason;
    row.microsPerHour = null;
    this.statusChanged(row.id);
    this.replacing.set(row.id, { sinceMs: now, cause });
    this.o.onAllocations?.(row, [], now);
    this.o.onShortfall();
  }

  private async tryServe(row: LeaseRow): Promise<boolean> {
    const allocation = findAllocation(this.wants(row.request as LeaseRequest), this.o.fleet.freeGpus());
    if (!allocation) return false;
    const now = this.o.clock.now();
    const replaced = this.replacing.get(row.id);
    const reason = replaced ? `moved: ${replaced.cause}` : row.reason;
    await this.o.db.transaction(async (tx) => {
      await tx
        .insert(leaseAllocations)
        .values(
          allocation.map((a) => ({ leaseId: row.id, instanceId: a.instanceId, gpuIndices: a.gpuIndices })),
        );
      await tx
        .update(leases)
        .set({ status: 'ready', reason, readyAt: now, microsPerHour: total(allocation) })
        .where(eq(leases.id, row.id));
    });
    for (const a of allocation) this.o.fleet.allocate(row.id, a.instanceId, a.gpuIndices);
    row.status = 'ready';
    row.reason = reason;
    row.readyAt = now;
    row.microsPerHour = total(allocation);
    this.statusChanged(row.id);
    // The wait for the first GPUs is the lease's wait; a wait for replacement capacity is not counted again.
    if (replaced) this.replacing.delete(row.id);
    else this.o.onReady?.(now - row.createdAt, row);
    this.o.onAllocations?.(row, allocation, now);
    return true;
  }

  private async end(
    row: LeaseRow,
    status: 'released' | 'expired' | 'failed',
    reason: string | null,
  ): Promise<void> {
    const now = this.o.clock.now();
    await this.o.db.update(leases).set({ status, reason, endedAt: now }).where(eq(leases.id, row.id));
    this.o.fleet.free(row.id);
    this.open.delete(row.id);
    this.replacing.delete(row.id);
    const wasReady = row.status === 'ready';
    row.status = status;
    row.reason = reason;
    row.endedAt = now;
    this.statusChanged(row.id);
    if (wasReady) this.o.onAllocations?.(row, [], now);
  }

  private async find(id: string): Promise<LeaseRow | undefined> {
    const [row] = await this.o.db.select().from(leases).where(eq(leases.id, id));
    return row;
  }

  /** The lease if the principal may see it; another tenant's lease is "not found", never "forbidden". */
  private async owned(principal: Principal, id: string): Promise<LeaseRow> {
    const row = this.open.get(id) ?? (await this.find(id));
    if (!row || (principal.role !== 'operator' && row.tenantId !== principal.tenantId))
      throw new NotFoundError(`lease ${id} not found`);
    return row;
  }

  private async allocationsOf(leaseId: string): Promise<Allocation[]> {
    const rows = await this.o.db.select().from(leaseAllocations).where(eq(leaseAllocations.leaseId, leaseId));
    return rows.map((r) => {
      const instance = this.o.fleet.get(r.instanceId);
      return {
        instanceId: r.instanceId,
        gpuIndices: r.gpuIndices,
        microsPerHour: instance
          ? shareOf(instance.microsPerHour, r.gpuIndices.length, instance.gpusPerInstance)
          : 0,
      };
    });
  }

  private async view(row: LeaseRow): Promise<Lease> {
    const request = row.request as LeaseRequest;
    const address = (instanceId: string) => this.o.addressOf?.(instanceId);
    const allocations =
      row.status === 'ready'
        ? (await this.o.db.select().from(leaseAllocations).where(eq(leaseAllocations.leaseId, row.id))).map(
            (a) => {
              const instance = this.o.fleet.get(a.instanceId);
              return {
                instanceId: a.instanceId,
                vendor: instance?.vendor ?? '',
                region: instance?.region ?? '',
                zone: instance?.zone ?? '',
                instanceType: instance?.instanceType ?? '',
                capacityType: instance?.capacityType ?? '',
                gpuIndices: a.gpuIndices,
                ...(address(a.instanceId) ? { address: address(a.instanceId) as string } : {}),
              };
            },
          )
        : [];
    return {
      id: row.id,
      status: row.status,
      reason: row.reason,
      gpu: row.gpu,
      count: row.count,
      placement: request.placement,
      allocations,
      usdPerHour: row.microsPerHour === null ? null : microsToUsd(row.microsPerHour),
      createdAtMs: row.createdAt,
      readyAtMs: row.readyAt,
      endedAtMs: row.endedAt,
      expiresAtMs: row.expiresAt,
    };
  }
}

/**
 * Whether a stored request (read back from jsonb, which reorders keys; perhaps stored before a default was added)
 * means the same as a new one: both validated with defaults applied, then compared by meaning.
 */
function sameRequest(stored: unknown, request: LeaseRequest): boolean {
  const normalized = (value: unknown) => {
    const parsed = leaseRequestSchema.safeParse(value);
    return parsed.success ? parsed.data : value;
  };
  return jsonEqual(normalized(stored), normalized(request));
}
