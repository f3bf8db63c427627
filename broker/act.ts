/**
 * Carrying out a plan on the providers. Every call is first written as an action row whose id is the idempotency
 * key sent to the provider, so a crash between the call and its record never provisions twice: the next tick (or
 * the next start) repeats the pending action with the same key and gets the same instances back. Launches go out
 * in batches (`launch`); scale-down terminates idle instances and drains busy ones (`scaleDown`).
 */
import { eq, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { BackoffExhausted, type BackoffPolicy, withBackoff } from '../lib/backoff.ts';
import type { Clock } from '../lib/clock.ts';
import type { AgentBootstrap } from '../providers/agent-bootstrap.ts';
import type { Offering } from '../providers/catalog/offering.ts';
import type { Provider } from '../providers/provider.ts';
import {
  InsufficientCapacityError,
  ProviderError,
  ProviderUnavailableError,
  QuotaExceededError,
  ThrottledError,
} from '../providers/provider-errors.ts';
import type { Database } from './db/open-database.ts';
import { actions } from './db/schema.ts';
import type { Fleet, LiveInstance } from './fleet.ts';

export const FLEET_TAG = 'gpubroker-fleet';
export const ACTION_TAG = 'gpubroker-action';
/**
 * Retries of a provider call whose ThrottledError nobody retried yet (`retried` false: a provider that throttles
 * without waiting, like the simulated clouds): three, after the provider's `retryAfterMs` (`baseDelayFrom`, in place
 * of `baseDelayMs`), doubled at each retry. An adapter that retried already is not retried again: the rule, for
 * every caller, is ThrottledError's (providers/provider-errors.ts).
 */
const THROTTLE_RETRIES: BackoffPolicy = {
  maxRetries: 3,
  baseDelayMs: 1_000,
  maxDelayMs: Number.POSITIVE_INFINITY,
};
/**
 * Most instances one launch call asks for. A provider launches all or nothing in one zone, so a plan's 300
 * instances of one offering go out as batches: a stock-out then costs one batch, and what was had is kept.
 */
export const LAUNCH_BATCH = 16;

export interface ActuatorOptions {
  readonly db: Database;
  readonly clock: Clock;
  readonly providers: ReadonlyMap<string, Provider>;
  readonly fleet: Fleet;
  /** The id our instances are tagged with (read when a call is made: it is loaded on start). */
  readonly fleetId: () => string;
  readonly logger: Logger;
  /** A provider call failed (for metrics). */
  readonly onProviderError?: (vendor: string, error: unknown) => void;
  /**
   * The agent bootstrap for a new launch of `vendor` under `launchKey` (a join token bound to that key), or
   * undefined when the vendor's instances get no start-up script (simulated clouds: a local agent host joins them).
   * Asked once per provision action; its answer is stored with the action, so a repeat sends the same script.
   */
  readonly agentBootstrap?: (launchKey: string, vendor: string) => Promise<AgentBootstrap | undefined>;
}

/** What a `launch` did: how many instances came, and why it stopped short if it did. */
export interface LaunchOutcome {
  readonly launched: number;
  /** The provider had no capacity for a batch (the caller blocks the offering and re-plans). */
  readonly stockedOut: boolean;
  /** The provider refused a batch for quota (the caller learns the limit and re-plans). */
  readonly quotaRefusal: QuotaExceededError | undefined;
}

export type ActionRow = typeof actions.$inferSelect;

export class Actuator {
  /**
   * The actions this process knows to be pending, once read from the database: only the leader writes actions, so
   * after one read the set is kept here instead of queried at every tick. Undefined: read at the next `pending()`.
   */
  private knownPending: Map<string, ActionRow> | undefined;
  /** The two statements every action runs, built once. */
  private statements: ReturnType<typeof prepareActionStatements> | undefined;

  private readonly db: Database;
  private readonly clock: Clock;
  private readonly providers: ReadonlyMap<string, Provider>;
  private readonly fleet: Fleet;
  private readonly fleetId: () => string;
  private readonly logger: Logger;
  private readonly agentBootstrap: ActuatorOptions['agentBootstrap'];
  private readonly onProviderError: ActuatorOptions['onProviderError'];

  constructor(o: ActuatorOptions) {
    this.onProviderError = o.onProviderError;
    this.db = o.db;
    this.clock = o.clock;
    this.providers = o.providers;
    this.fleet = o.fleet;
    this.fleetId = o.fleetId;
    this.logger = o.logger;
    this.agentBootstrap = o.agentBootstrap;
  }

  /**
   * Launches `count` instances of an offering in batches of at most `LAUNCH_BATCH` (each its own action and key),
   * until all are launched or the provider refuses one.
   */
  async launch(planId: string, key: string, offering: Offering, count: number): Promise<LaunchOutcome> {
    let launched = 0;
    for (let batch = 0; launched < count; batch++) {
      const size = Math.min(LAUNCH_BATCH, count - launched);
      const row = await this.provision(
        planId,
        batch === 0 ? key : `${key}-b${batch}`,
        offering.vendor,
        offering.id,
        size,
      );
      if (row.status === 'done') {
        launched += size;
        continue;
      }
      const stockedOut = row.refusedBy instanceof InsufficientCapacityError;
      // Stock-outs are routine (the offering is blocked and the plan moves on); other refusals deserve a look.
      if (row.status === 'failed')
        this.logger[stockedOut ? 'info' : 'warn'](
          { offeringId: offering.id, count: size, error: row.error },
          'launch refused',
        );
      const quotaRefusal = row.refusedBy instanceof QuotaExceededError ? row.refusedBy : undefined;
      return { launched, stockedOut, quotaRefusal };
    }
    return { launched, stockedOut: false, quotaRefusal: undefined };
  }

  /**
   * Takes `count` instances of an offering out of the fleet: idle ones are terminated (pending before running,
   * youngest first); ones serving leases are drained, never killed under their leases.
   */
  async scaleDown(
    planId: string,
    key: string,
    offering: Offering,
    count: number,
  ): Promise<{ terminated: number; drained: number }> {
    const candidates = this.fleet
      .capacity()
      .filter((i) => i.offeringId === offering.id)
      .sort(
        (a, b) =>
          a.allocated.size - b.allocated.size ||
          Number(a.state === 'running') - Number(b.state === 'running') ||
          b.launchedAt - a.launchedAt ||
          (a.id < b.id ? -1 : 1),
      )
      .slice(0, count);
    const idle = candidates.filter((i) => i.allocated.size === 0);
    const busy = candidates.filter((i) => i.allocated.size > 0);
    if (idle.length > 0) await this.terminate(planId, `${key}-terminate`, offering.vendor, idle);
    await this.fleet.markDraining(busy.map((i) => i.id));
    return { terminated: idle.length, drained: busy.length };
  }

  /**
   * Provisions `count` instances of an offering under a new action. For a cloud whose instances start their own
   * agent, the action carries the bootstrap (a join token bound to its key), minted here once.
   */
  async provision(
    planId: string,
    key: string,
    vendor: string,
    offeringId: string,
    count: number,
  ): Promise<ProvisionOutcome> {
    const agent = this.providers.has(vendor) ? await this.agentBootstrap?.(key, vendor) : undefined;
    const now = this.clock.now();
    const row: ActionRow = {
      id: key,
      planId,
      kind: 'provision',
      vendor,
      offeringId,
      count,
      instanceIds: [],
      status: 'pending',
      error: null,
      createdAt: now,
      updatedAt: now,
      agent: agent ?? null,
    };
    await this.prepared().insert.execute({
      ...row,
      instanceIds: JSON.stringify(row.instanceIds),
      agent: row.agent ? JSON.stringify(row.agent) : null,
    });
    this.knownPending?.set(row.id, row);
    return this.runProvision(row);
  }

  /** Repeats a provision action left pending (crash, outage): same key and bootstrap, so never twice. */
  async runProvision(row: ActionRow): Promise<ProvisionOutcome> {
    const provider = this.providers.get(row.vendor);
    if (!provider) return this.finish(row, 'failed', `no provider for ${row.vendor}`, []);
    try {
      const launched = await this.withRetries(() =>
        provider.provision({
          offeringId: row.offeringId,
          count: row.count,
          idempotencyKey: row.id,
          tags: { [FLEET_TAG]: this.fleetId(), [ACTION_TAG]: row.id },
          ...(row.agent ? { agent: row.agent } : {}),
        }),
      );
      await this.fleet.recordAll(launched);
      return this.finish(
        row,
        'done',
        null,
        launched.map((i) => i.id),
      );
    } catch (error) {
      if (error instanceof ProviderError) this.onProviderError?.(row.vendor, error);
      if (error instanceof ProviderUnavailableError) return row; // outcome unknown: stays pending, repeated later
      if (error instanceof ProviderError)
        return {
          ...(await this.finish(row, 'failed', `${error.constructor.name}: ${error.message}`, [])),
          refusedBy: error,
        };
      throw error;
    }
  }

  /** Terminates instances (all idle: the caller never passes an instance that holds a lease). */
  async terminate(
    planId: string,
    key: string,
    vendor: string,
    targets: readonly LiveInstance[],
  ): Promise<ActionRow> {
    const now = this.clock.now();
    const row: ActionRow = {
      id: key,
      planId,
      kind: 'terminate',
      vendor,
      offeringId: targets[0]?.offeringId ?? '',
      count: targets.length,
      instanceIds: targets.map((i) => i.id),
      status: 'pending',
      error: null,
      createdAt: now,
      updatedAt: now,
      agent: null,
    };
    await this.prepared().insert.execute({
      ...row,
      instanceIds: JSON.stringify(row.instanceIds),
      agent: null,
    });
    this.knownPending?.set(row.id, row);
    return this.runTerminate(row);
  }

  async runTerminate(row: ActionRow): Promise<ActionRow> {
    const provider = this.providers.get(row.vendor);
    if (!provider) return this.finish(row, 'failed', `no provider for ${row.vendor}`, row.instanceIds);
    try {
      await this.withRetries(() => provider.terminate(row.instanceIds));
      return this.finish(row, 'done', null, row.instanceIds);
    } catch (error) {
      if (error instanceof ProviderError) {
        this.onProviderError?.(row.vendor, error);
        return row; // terminate is idempotent: repeated at the next tick
      }
      throw error;
    }
  }

  /** Actions left pending by a crash or an outage, oldest first. */
  async pending(): Promise<ActionRow[]> {
    if (!this.knownPending) {
      const rows = await this.db.select().from(actions).where(eq(actions.status, 'pending'));
      rows.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      this.knownPending = new Map(rows.map((r) => [r.id, r]));
    }
    return [...this.knownPending.values()];
  }

  /** Another process may have written actions (this one just won the leadership): read them again next time. */
  forgetPending(): void {
    this.knownPending = undefined;
  }

  private prepared(): ReturnType<typeof prepareActionStatements> {
    this.statements ??= prepareActionStatements(this.db);
    return this.statements;
  }

  /** Runs a provider call, retrying it while throttled if its provider did not retry (`THROTTLE_RETRIES`). */
  private async withRetries<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await withBackoff(
        {
          clock: this.clock,
          policy: THROTTLE_RETRIES,
          retryable: (error) => error instanceof ThrottledError && !error.retried,
          baseDelayFrom: (error) => (error as ThrottledError).retryAfterMs,
        },
        call,
      );
    } catch (error) {
      throw error instanceof BackoffExhausted ? error.last : error;
    }
  }

  private async finish(
    row: ActionRow,
    status: 'done' | 'failed',
    message: string | null,
    instanceIds: string[],
  ): Promise<ActionRow> {
    // An ended action is never sent again: its join token need not be kept in clear any longer.
    const updated = { ...row, status, error: message, instanceIds, updatedAt: this.clock.now(), agent: null };
    await this.prepared().finish.execute({
      id: row.id,
      status,
      error: message,
      instanceIds: JSON.stringify(instanceIds),
      updatedAt: updated.updatedAt,
    });
    this.knownPending?.delete(row.id);
    return updated;
  }
}

function prepareActionStatements(db: Database) {
  const p = (name: keyof ActionRow) => sql.placeholder(name);
  return {
    insert: db
      .insert(actions)
      .values({
        id: p('id'),
        planId: p('planId'),
        kind: p('kind'),
        vendor: p('vendor'),
        offeringId: p('offeringId'),
        count: p('count'),
        instanceIds: sql`${p('instanceIds')}::jsonb`,
        status: p('status'),
        error: p('error'),
        createdAt: p('createdAt'),
        updatedAt: p('updatedAt'),
        agent: sql`${p('agent')}::jsonb`,
      })
      .prepare('action_insert'),
    finish: db
      .update(actions)
      .set({
        status: sql`${p('status')}`,
        error: sql`${p('error')}`,
        instanceIds: sql`${p('instanceIds')}::jsonb`,
        updatedAt: sql`${p('updatedAt')}`,
        agent: sql`null`,
      })
      .where(eq(actions.id, p('id')))
      .prepare('action_finish'),
  };
}

/** A provision action as it ended, with the provider's error when it refused (not stored: the row has its text). */
export type ProvisionOutcome = ActionRow & { readonly refusedBy?: ProviderError };
