/**
 * The broker assembled (its composition root): storage, policies, tokens, offerings, fleet, leases, the runtime,
 * the meter and the control loop over a set of providers, whose events and inventories go through
 * `ProviderEvents`. `start()` catches up (reconciles with every provider's inventory) before the loop runs.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, eq, isNull } from 'drizzle-orm';
import pino, { type Logger } from 'pino';
import type { Hello } from '../agent/protocol.ts';
import type { Clock } from '../lib/clock.ts';
import { IdGenerator } from '../lib/ids.ts';
import { microsToUsd } from '../lib/money.ts';
import { Random } from '../lib/random.ts';
import type { Stopwatch } from '../lib/stopwatch.ts';
import type { Provider } from '../providers/provider.ts';
import type { Executor } from '../runtime/executor/executor.ts';
import { parseFunctionOptions } from '../runtime/function-spec.ts';
import { Meter } from '../runtime/meter/meter.ts';
import { UsageStore } from '../runtime/meter/usage-store.ts';
import { DEFAULT_RETAIN_CALLS_MS, Runtime } from '../runtime/runtime.ts';
import { Actuator } from './act.ts';
import { AgentCapacity } from './agents/agent-capacity.ts';
import { AgentExecutor } from './agents/agent-executor.ts';
import { AgentHub, MACHINE_PREFIX } from './agents/agent-hub.ts';
import { AgentRegistry } from './agents/agent-registry.ts';
import { DEFAULT_AGENT_JOIN_TIMEOUT_MS, JoinWatchdog } from './agents/join-watchdog.ts';
import { Machines } from './agents/machines.ts';
import { AuditLog } from './audit-log.ts';
import { InvoiceService } from './billing/invoices.ts';
import { PriceBookStore } from './billing/price-book.ts';
import { SpendLimitService } from './billing/spend-limits.ts';
import type { OpenedDatabase } from './db/open-database.ts';
import { apps, calls, instances, settings } from './db/schema.ts';
import { type Demand, sumDemand } from './demand.ts';
import { Fleet } from './fleet.ts';
import { PeakAndLevelForecaster } from './forecast.ts';
import { BundleStore } from './functions/bundle-store.ts';
import { CallJournal } from './functions/call-journal.ts';
import { EndedRuns } from './functions/ended-runs.ts';
import { LayerStore } from './functions/layer-store.ts';
import { RecentFailures } from './functions/recent-failures.ts';
import { LeaseMetering } from './lease-metering.ts';
import { LeaseService } from './leases.ts';
import { LiveOfferings } from './live-offerings.ts';
import { ControlLoop } from './loop.ts';
import { BrokerMetrics } from './metrics.ts';
import { type BrokerPolicy, brokerPolicy } from './policy.ts';
import { PolicyStore } from './policy-store.ts';
import { ProviderEvents } from './provider-events.ts';
import { QuotaBook } from './quota-book.ts';
import { TokenStore } from './tokens.ts';
import { UnavailableCache } from './unavailable-cache.ts';

export interface BrokerCoreOptions {
  readonly database: OpenedDatabase;
  readonly clock: Clock;
  readonly providers: readonly Provider[];
  /** Seeds ids (default: random); a simulation passes its seed. */
  readonly seed?: number;
  readonly logger?: Logger;
  /** How often the meter checkpoints open usage intervals (default 5,000 ms). */
  readonly meterHeartbeatMs?: number;
  /** How long the runtime keeps a finished call for `get` and `result` (default: an hour). */
  readonly retainCallsMs?: number;
  /** Where bundles and container working directories live (default: a temporary directory, removed on close). */
  readonly stateDir?: string;
  /**
   * Runs the runtime's containers. Default: the agents' (`agents/agent-executor.ts`): each container is started
   * by the agent of its instance, and only instances whose agent has joined are placed on. A capacity simulation
   * passes its own, whose containers start and answer on the virtual clock (`simulations/sim-executor.ts`).
   */
  readonly executor?: Executor;
  /** How often agents heartbeat (default 2,000 ms); an agent silent for three is lost. */
  readonly agentHeartbeatMs?: number;
  /**
   * Clouds whose instances start their own agent (aws, gcp, azure): each launch of these vendors carries a
   * start-up script with the broker's URL as the instances reach it and a join token bound to the launch.
   */
  readonly agentBootstrap?: {
    readonly brokerUrl: string;
    readonly vendors: readonly string[];
    /** The gpubroker version the instances install (default: this one's). */
    readonly version?: string;
  };
  /** How long such an instance may run before its agent joins; then it is replaced (default 10 minutes). */
  readonly agentJoinTimeoutMs?: number;
  /** Take machines of your own: agents that join without an instance id (`--providers machines`). */
  readonly machines?: boolean;
  /** Where the wall time goes (a simulation's profile): the runtime's and the meter's work. Default untimed. */
  readonly stopwatches?: { readonly runtime?: Stopwatch; readonly meter?: Stopwatch };
}

/** How long a launch-bound join token outlives the join timeout: the cloud's launch and the instance's boot. */
const LAUNCH_ALLOWANCE_MS = 60 * 60_000;

export interface LeaseWaitStats {
  count: number;
  sumMs: number;
  recent: number[];
}

/** An ephemeral app (a `gpubroker run`) untouched this long, with no call left to finish, is gone after a restart. */
const ABANDONED_RUN_MS = 3_600_000;

export class BrokerCore {
  readonly policies: PolicyStore;
  readonly tokens: TokenStore;
  readonly fleet: Fleet;
  readonly leases: LeaseService;
  readonly loop: ControlLoop;
  /** The offerings the providers sell now (the loop refreshes them; leases and invoices read them). */
  readonly offerings: LiveOfferings;
  readonly logger: Logger;
  /** Token creations and tenant-limit changes: who, when, what. */
  readonly audit: AuditLog;
  /** Function calls on disk: none is lost to a crash. */
  readonly callJournal: CallJournal;
  /** Apps of `gpubroker run`s that ended, kept warm until their scale-down window has passed. */
  readonly endedRuns: EndedRuns;
  /** The last failed calls and why (the console's Functions page, `GET /v1/containers`). */
  readonly recentFailures = new RecentFailures();
  private readonly closers: (() => Promise<void> | void)[] = [];
  /** `/metrics` (prom-client). */
  readonly metrics: BrokerMetrics;
  readonly leaseWaits: LeaseWaitStats = { count: 0, sumMs: 0, recent: [] };
  readonly usage: UsageStore;
  readonly meter: Meter;
  readonly priceBooks: PriceBookStore;
  readonly invoices: InvoiceService;
  readonly spend: SpendLimitService;
  private readonly leaseMetering: LeaseMetering;
  readonly bundles: BundleStore;
  /** Image layers (npm packages), by recipe id, per tenant. */
  readonly layers: LayerStore;
  readonly runtime: Runtime;
  /** Who may be an agent: join tokens and agents' credentials. */
  readonly agentRegistry: AgentRegistry;
  /** The agents' connections; undefined when a simulation brings its own executor. */
  readonly agents: AgentHub | undefined;
  /** Machines of your own, when this broker takes them. */
  readonly machines: Machines | undefined;
  /** Where bundles (and, in the embedded default, the local agent host's files) live. */
  readonly stateDir: string;
  private readonly executor: Executor;
  private readonly temporaryStateDir: string | undefined;
  private readonly providers: Map<string, Provider>;
  private readonly events: ProviderEvents;
  /** Gives up on cloud instances whose agent never joins; undefined without agent bootstraps. */
  readonly joinWatchdog: JoinWatchdog | undefined;
  fleetId = '';

  get database(): OpenedDatabase {
    return this.o.database;
  }

  /** Provider events the broker has handled so far (a simulation waits for those its clouds published). */
  get providerEventsHandled(): number {
    return this.events.handled;
  }

  get clock(): Clock {
    return this.o.clock;
  }

  constructor(private readonly o: BrokerCoreOptions) {
    const { db } = o.database;
    this.logger = o.logger ?? pino({ level: process.env.GPUBROKER_LOG ?? 'silent' });
    const ids = new IdGenerator(o.clock, new Random(o.seed ?? randomBytes(4).readUInt32LE(0)));
    this.providers = new Map(o.providers.map((p) => [p.vendor, p]));
    this.policies = new PolicyStore(db, o.clock);
    this.tokens = new TokenStore(db, o.clock, ids);
    this.audit = new AuditLog(db, o.clock, ids);
    this.fleet = new Fleet(db, o.clock);
    this.metrics = new BrokerMetrics({
      instances: () => this.fleet.all().map((i) => ({ ...i, usdPerHour: microsToUsd(i.microsPerHour) })),
      readyBufferGpus: () => this.fleet.freeGpusByType(),
      bufferTargetGpus: () => this.loop.bufferTargets,
      openLeases: () => this.leases.openOf(undefined),
      callsInFlight: () => {
        const perTenant = new Map<string, { tenantId: string; status: string; count: number }>();
        for (const c of this.runtime.callsInFlight()) {
          const key = `${c.tenantId}\u0000${c.status}`;
          const entry = perTenant.get(key) ?? { tenantId: c.tenantId, status: c.status, count: 0 };
          entry.count += c.count;
          perTenant.set(key, entry);
        }
        return perTenant.values();
      },
      lastTick: () => this.loop.last,
    });
    this.usage = new UsageStore(db);
    this.meter = new Meter({
      clock: o.clock,
      store: this.usage,
      ...(o.meterHeartbeatMs !== undefined ? { heartbeatMs: o.meterHeartbeatMs } : {}),
      onWriteError: (error) => this.logger.error({ err: error }, 'usage not written yet; retrying'),
      ...(o.stopwatches?.meter ? { stopwatch: o.stopwatches.meter } : {}),
    });
    this.leaseMetering = new LeaseMetering(this.meter, this.usage, this.fleet);
    this.priceBooks = new PriceBookStore(db, o.clock);
    const quotas = new QuotaBook(o.clock);
    this.offerings = new LiveOfferings({ providers: this.providers, quotas, logger: this.logger });
    this.invoices = new InvoiceService({
      db,
      clock: o.clock,
      priceBooks: this.priceBooks,
      offerings: () => this.offerings.all(),
    });
    this.spend = new SpendLimitService(db, o.clock, this.invoices, () => this.meter.flush());
    this.temporaryStateDir = o.stateDir ? undefined : mkdtempSync(join(tmpdir(), 'gpubroker-state-'));
    const stateDir = o.stateDir ?? (this.temporaryStateDir as string);
    this.stateDir = stateDir;
    this.bundles = new BundleStore(join(stateDir, 'bundles'));
    this.layers = new LayerStore(join(stateDir, 'layers'));
    this.agentRegistry = new AgentRegistry(db, o.clock, ids, this.tokens);
    this.machines = o.machines
      ? new Machines({
          fleet: this.fleet,
          clock: o.clock,
          logger: this.logger,
          defaultRegionGroup: () => this.currentPolicy.defaultRegionGroup,
        })
      : undefined;
    if (o.executor) {
      this.executor = o.executor;
      this.agents = undefined;
    } else {
      this.agents = new AgentHub({
        registry: this.agentRegistry,
        clock: o.clock,
        logger: this.logger,
        ...(o.agentHeartbeatMs !== undefined ? { heartbeatMs: o.agentHeartbeatMs } : {}),
        ...(this.machines ? { machines: this.machines } : {}),
        adopt: (instanceId, containers) => this.adoptContainers(instanceId, containers),
        expected: (instanceId) => {
          const instance = this.fleet.get(instanceId);
          if (!instance || instance.state === 'terminating' || instance.state === 'terminated')
            return undefined;
          return { gpu: instance.gpu, gpusPerInstance: instance.gpusPerInstance };
        },
        instancesOfLaunch: async (launchKey) =>
          (
            await db
              .select({ id: instances.id })
              .from(instances)
              .where(eq(instances.idempotencyKey, launchKey))
          ).map((row) => row.id),
      });
      this.executor = new AgentExecutor(this.agents, o.clock);
    }
    this.callJournal = new CallJournal({
      db,
      clock: o.clock,
      logger: this.logger,
      retainMs: DEFAULT_RETAIN_CALLS_MS,
    });
    this.runtime = new Runtime({
      onCallFinished: (callId, outcome, view) => {
        if (outcome.status === 'failed') this.recentFailures.add(view(), outcome.error, o.clock.now());
        if (this.callJournal.journals(callId)) this.callJournal.finished(view(), outcome);
      },
      clock: o.clock,
      capacity: this.agents ? new AgentCapacity(this.fleet, this.agents) : this.fleet,
      executor: this.executor,
      meter: this.meter,
      ...(o.stopwatches?.runtime ? { stopwatch: o.stopwatches.runtime } : {}),
      ...(o.retainCallsMs !== undefined ? { retainCallsMs: o.retainCallsMs } : {}),
      // The runtime's bundle ids are `<tenant id>/<sha-256>`: a container loads its own tenant's code only.
      bundlePathOf: (ref) => {
        const [tenantId = '', bundleId = ''] = ref.split('/');
        return this.bundles.pathOf(tenantId, bundleId);
      },
      layerSha256Of: (tenantId, layerId) => this.layers.info(tenantId, layerId)?.sha256,
      onShortfall: () => this.loop.trigger(),
      logger: this.logger,
      ids,
    });
    this.endedRuns = new EndedRuns({
      clock: o.clock,
      runtime: this.runtime,
      stop: (tenantId, app) => this.stopApp(tenantId, app),
      onError: (error, app) => this.logger.error({ err: error, app }, 'cannot stop the app of an ended run'),
    });
    this.leases = new LeaseService({
      addressOf: (instanceId) => this.agents?.addressOf(instanceId),
      db,
      clock: o.clock,
      ids,
      fleet: this.fleet,
      // Machines of your own serve leases too: each is an offering of its own here.
      offerings: () =>
        this.machines ? [...this.offerings.all(), ...this.machines.offerings()] : this.offerings.all(),
      policy: () => this.currentPolicy,
      onShortfall: () => this.loop.trigger(),
      onReady: (waitedMs, lease) => {
        this.metrics.leaseReady(lease.gpu, waitedMs);
        this.leaseWaits.count++;
        this.leaseWaits.sumMs += waitedMs;
        this.leaseWaits.recent.push(waitedMs);
        if (this.leaseWaits.recent.length > 1000) this.leaseWaits.recent.shift();
      },
      onAllocations: (lease, allocations, atMs) =>
        this.leaseMetering.allocationsChanged(lease, allocations, atMs),
    });
    const joinTimeoutMs = o.agentJoinTimeoutMs ?? DEFAULT_AGENT_JOIN_TIMEOUT_MS;
    const bootstrap = this.agents ? o.agentBootstrap : undefined;
    const bootstrapVendors = new Set(bootstrap?.vendors ?? []);
    const actuator = new Actuator({
      db,
      clock: o.clock,
      providers: this.providers,
      fleet: this.fleet,
      fleetId: () => this.fleetId,
      logger: this.logger,
      onProviderError: (vendor, error) => this.metrics.providerError(vendor, error),
      ...(bootstrap
        ? {
            agentBootstrap: async (launchKey: string, vendor: string) => {
              if (!bootstrapVendors.has(vendor)) return undefined;
              // Long enough for the cloud to launch and boot the instances, and for their agents to join.
              const { token } = await this.agentRegistry.createJoinToken({
                createdBy: 'broker',
                ttlMs: LAUNCH_ALLOWANCE_MS + joinTimeoutMs,
                boundTo: launchKey,
              });
              return {
                brokerUrl: bootstrap.brokerUrl,
                joinToken: token,
                ...(bootstrap.version ? { version: bootstrap.version } : {}),
              };
            },
          }
        : {}),
    });
    this.loop = new ControlLoop({
      db,
      clock: o.clock,
      ids,
      offerings: this.offerings,
      fleet: this.fleet,
      leases: this.leases,
      policies: this.policies,
      forecaster: new PeakAndLevelForecaster(),
      unavailable: new UnavailableCache(o.clock),
      quotas,
      actuator,
      logger: this.logger,
      onTick: (report) => this.metrics.tick(report),
      tryLeadership: () => o.database.tryLeadership(),
      onLeadership: () => this.catchUp(),
      observe: () => this.stopOverSpendLimits(),
      demand: () => this.demand(),
    });
    this.events = new ProviderEvents({
      db,
      providers: this.providers,
      fleet: this.fleet,
      leases: this.leases,
      runtime: this.runtime,
      loop: this.loop,
      fleetId: () => this.fleetId,
      logger: this.logger,
    });
    const hub = this.agents;
    this.joinWatchdog =
      hub && bootstrapVendors.size > 0
        ? new JoinWatchdog({
            clock: o.clock,
            logger: this.logger,
            fleet: this.fleet,
            vendors: bootstrapVendors,
            timeoutMs: joinTimeoutMs,
            present: (instanceId) => hub.present(instanceId),
            joined: (instanceIds) => this.agentRegistry.joinedInstances(instanceIds),
            leader: () => this.loop.leader,
            giveUp: async (lost, why) => {
              for (const instance of lost) await this.events.ended(instance.id, 'failed', why);
              for (const vendor of new Set(lost.map((i) => i.vendor)))
                await actuator.terminate(
                  'join-watchdog',
                  ids.next('jointimeout'),
                  vendor,
                  lost.filter((i) => i.vendor === vendor),
                );
            },
          })
        : undefined;
  }

  /** What is asked for now: open leases and the runtime's containers (running, and wanted but not placed). */
  demand(): Demand[] {
    const { defaultRegionGroup } = this.currentPolicy;
    return sumDemand([
      ...this.leases.openDemand(),
      ...this.runtime.demand().map((d) => ({
        gpu: d.gpu,
        regionGroup: d.regionGroup ?? defaultRegionGroup,
        gangSize: d.gangSize,
        gpus: d.gpus,
      })),
    ]);
  }

  /** The policy in force: the stored one after `start()`, kept fresh by `setPolicy`. */
  private currentPolicy: BrokerPolicy = brokerPolicy();

  /**
   * Loads state, takes the leadership if it is free (the leader reconciles with the providers), listens to their
   * events and starts the loop's schedule. A follower keeps trying for the leadership at every scheduled tick.
   */
  async start(options: { schedule?: boolean } = {}): Promise<void> {
    this.fleetId = await this.ensureFleetId();
    this.currentPolicy = (await this.policies.current()).policy;
    // Listen before catching up: an event of the moments the inventory is being read waits its turn instead of
    // being lost (a boot that finished after the list and before the subscription would never be heard of).
    this.events.listen();
    try {
      if (!(await this.loop.claimLeadership())) {
        await this.offerings.refresh();
        await this.fleet.load();
        await this.leases.load();
      }
    } finally {
      this.events.open();
    }
    if (options.schedule !== false) this.loop.start();
    this.joinWatchdog?.start();
  }

  /** The URL this replica serves the API on; the leader's is stored so that followers can pass requests on. */
  advertisedUrl: string | undefined;

  async advertise(url: string): Promise<void> {
    this.advertisedUrl = url;
    if (this.loop.leader) await this.writeSetting('leader-url', url);
  }

  /** The leader's API URL as it last advertised it. */
  async leaderUrl(): Promise<string | undefined> {
    const [row] = await this.o.database.db.select().from(settings).where(eq(settings.key, 'leader-url'));
    return row?.value;
  }

  /**
   * The leadership was just won: what the previous leader (or this process before a crash) left is the truth.
   * Ready leases are metered again first of all, before the providers are asked anything: time until then goes
   * unbilled.
   */
  private async catchUp(): Promise<void> {
    this.policies.forget();
    this.priceBooks.forget();
    this.currentPolicy = (await this.policies.current()).policy;
    await this.fleet.load();
    await this.leases.load();
    await this.leaseMetering.resume(await this.leases.readyWithAllocations(), this.o.clock.now());
    await this.offerings.refresh();
    await this.events.reconcile();
    await this.redeployApps();
    await this.restoreCalls();
    this.runtime.start();
    this.runtimeRunning.resolve();
    if (this.advertisedUrl) await this.writeSetting('leader-url', this.advertisedUrl);
    this.logger.info({ url: this.advertisedUrl }, 'leading the control loop');
  }

  /**
   * Deployed apps come back after a restart or a takeover (their containers start again as calls come), those of a
   * `gpubroker run` too: its calls come back with them, and the run deletes its app when it ends.
   */
  private async redeployApps(): Promise<void> {
    const { db } = this.o.database;
    for (const row of await db.select().from(apps)) {
      // A run that died with the broker and left nothing to finish: its app goes (a live run deploys again).
      if (row.ephemeral && row.updatedAt < this.o.clock.now() - ABANDONED_RUN_MS) {
        const [open] = await db
          .select({ id: calls.id })
          .from(calls)
          .where(and(eq(calls.appTenantId, row.tenantId), eq(calls.app, row.name), isNull(calls.finishedAt)))
          .limit(1);
        if (!open) {
          await db.delete(apps).where(and(eq(apps.tenantId, row.tenantId), eq(apps.name, row.name)));
          continue;
        }
      }
      try {
        const functions = Object.fromEntries(
          Object.entries(row.functions as Record<string, unknown>).map(([name, options]) => [
            name,
            parseFunctionOptions(options, `functions.${name}`),
          ]),
        );
        this.runtime.deployApp({
          tenantId: row.tenantId,
          app: row.name,
          bundleId: `${row.tenantId}/${row.bundleId}`,
          functions,
        });
      } catch (error) {
        this.logger.error({ err: error, app: row.name }, 'cannot redeploy app');
      }
    }
  }

  /** The journal's calls back in the runtime: finished ones with their outcome, unfinished ones queued again. */
  private async restoreCalls(): Promise<void> {
    let queued = 0;
    for (const call of await this.callJournal.load()) {
      try {
        this.runtime.restore(call);
        if (!call.outcome) queued++;
      } catch (error) {
        if (call.outcome) continue;
        await this.callJournal.failNow(call.callId, {
          name: 'Error',
          message: `not run after the broker restarted: ${(error as Error).message}`,
        });
      }
    }
    if (queued > 0) this.logger.info({ calls: queued }, 'calls queued again after a restart');
  }

  /** Ends the leases of tenants at a spend limit whose policy is to stop (checked at every tick). */
  private async stopOverSpendLimits(): Promise<void> {
    const tenants = [...new Set(this.leases.openOf(undefined).map((l) => l.tenantId))];
    for (const { tenantId, reason } of await this.spend.toStop(tenants))
      for (const lease of this.leases.openOf(tenantId)) await this.leases.endFor(lease.id, reason);
  }

  private async writeSetting(key: string, value: string): Promise<void> {
    await this.o.database.db
      .insert(settings)
      .values({ key, value })
      .onConflictDoUpdate({ target: settings.key, set: { value } });
  }

  /** Resolves once the runtime runs (this replica leads and caught up); containers are adopted only then. */
  private readonly runtimeRunning = deferred();

  /**
   * Containers an agent still runs that this process did not start (it restarted): the runtime takes over those
   * of deployed apps whose bundle and GPUs still fit, once it runs; the rest are to be stopped.
   */
  private async adoptContainers(instanceId: string, containers: Hello['containers']): Promise<string[]> {
    const waited = new AbortController();
    await Promise.race([
      this.runtimeRunning.promise,
      this.o.clock.sleep(30_000, waited.signal).catch(() => undefined),
    ]);
    waited.abort();
    const stop: string[] = [];
    for (const c of containers) {
      const order = c.order;
      const adopted =
        order !== undefined &&
        this.loop.leader &&
        this.runtime.adopt({
          containerId: c.containerId,
          tenantId: order.tenantId,
          app: order.app,
          functionName: order.functionName,
          bundleId: `${order.bundle.tenantId}/${order.bundle.sha256}`,
          instanceId,
          gpuIndices: order.gpuIndices,
          env: order.env,
          concurrency: order.concurrency,
          ready: c.ready,
        });
      if (adopted) this.logger.info({ containerId: c.containerId, instanceId }, 'container adopted');
      else stop.push(c.containerId);
    }
    return stop;
  }

  /** Revokes an agent's credential and disconnects it; a machine of your own leaves the fleet. */
  async revokeAgent(agentId: string): Promise<void> {
    const agent = await this.agentRegistry.revoke(agentId);
    this.agents?.disconnect(agentId, 'revoked by an operator');
    if (agent.instanceId.startsWith(MACHINE_PREFIX)) {
      this.runtime.drainInstances([agent.instanceId]);
      await this.leases.evacuate(
        agent.instanceId,
        `machine ${agent.instanceId} was removed (its agent revoked)`,
      );
      await this.machines?.removed(agent.instanceId);
    }
  }

  /** Applies a new policy version (validated; ValidationError names the field). */
  async setPolicy(input: unknown, actor: string) {
    const version = await this.policies.set(input, actor);
    this.currentPolicy = version.policy;
    return version;
  }

  /** Runs `closer` first when the broker closes (the console ends its event streams with it). */
  onClose(closer: () => Promise<void> | void): void {
    this.closers.push(closer);
  }

  /** Stops an app for good: its stored row goes, its containers stop and its unfinished calls fail. */
  async stopApp(tenantId: string, app: string): Promise<void> {
    this.endedRuns.forget(tenantId, app);
    await this.o.database.db.delete(apps).where(and(eq(apps.tenantId, tenantId), eq(apps.name, app)));
    await this.runtime.stopApp(tenantId, app);
  }

  async close(): Promise<void> {
    this.endedRuns.close();
    for (const closer of this.closers.splice(0)) await closer();
    this.loop.stop();
    await this.joinWatchdog?.stop();
    await this.loop.idle();
    // The journal first: calls the runtime fails as it closes stay unfinished on disk and run after the restart.
    await this.callJournal.close();
    await this.runtime.close();
    await this.executor.close();
    await this.agents?.close();
    // A clean stop ends the usage it metered now; a crash leaves it at the last checkpoint.
    if (this.loop.leader) await this.meter.shutdown();
    if (this.temporaryStateDir) rmSync(this.temporaryStateDir, { recursive: true, force: true });
    await this.events.close();
  }

  private async ensureFleetId(): Promise<string> {
    const { db } = this.o.database;
    const [row] = await db.select().from(settings).where(eq(settings.key, 'fleet-id'));
    if (row) return row.value;
    const value = `fleet-${randomBytes(6).toString('hex')}`;
    await db.insert(settings).values({ key: 'fleet-id', value }).onConflictDoNothing();
    const [stored] = await db.select().from(settings).where(eq(settings.key, 'fleet-id'));
    return stored?.value ?? value;
  }
}

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
