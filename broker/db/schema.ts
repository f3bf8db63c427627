/**
 * The broker's tables (drizzle). Times are integer ms since the epoch and money integer micro-USD, both `bigint`
 * columns read as JS numbers (safe integers). Migrations are generated from this file by drizzle-kit into
 * `broker/db/migrations/` and committed; they run on start.
 */
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import type { AgentBootstrap } from '../../providers/agent-bootstrap.ts';

const ms = (name: string) => bigint(name, { mode: 'number' });

export const tenants = pgTable('tenants', {
  id: text('id').primaryKey(),
  name: text('name').notNull().unique(),
  /** Most GPUs the tenant may hold in leases at once; null: no limit. */
  gpuQuota: integer('gpu_quota'),
  /** Spend limits in micro-USD (billed usage in the last hour; this calendar month); null: none. */
  spendLimitHourMicros: bigint('spend_limit_hour_micros', { mode: 'number' }),
  spendLimitMonthMicros: bigint('spend_limit_month_micros', { mode: 'number' }),
  /** At a limit, new leases get 402; what runs `continue`s or is `stop`ped (leases released). */
  onSpendLimit: text('on_spend_limit', { enum: ['continue', 'stop'] })
    .notNull()
    .default('continue'),
  createdAt: ms('created_at').notNull(),
});

export const apiTokens = pgTable('api_tokens', {
  id: text('id').primaryKey(),
  tenantId: text('tenant_id')
    .notNull()
    .references(() => tenants.id),
  /** SHA-256 of the token, hex; the token itself is shown once and never stored. */
  tokenHash: text('token_hash').notNull().unique(),
  role: text('role', { enum: ['tenant', 'operator'] }).notNull(),
  createdAt: ms('created_at').notNull(),
  revokedAt: ms('revoked_at'),
});

/** Every policy version ever set; the highest version is in force. */
export const policies = pgTable('policies', {
  version: integer('version').primaryKey(),
  policy: jsonb('policy').notNull(),
  createdAt: ms('created_at').notNull(),
  createdBy: text('created_by').notNull(),
  /** What changed against the previous version: `[{ path, from, to }]`. */
  diff: jsonb('diff').notNull(),
});

export const instances = pgTable(
  'instances',
  {
    id: text('id').primaryKey(),
    vendor: text('vendor').notNull(),
    offeringId: text('offering_id').notNull(),
    region: text('region').notNull(),
    zone: text('zone').notNull(),
    instanceType: text('instance_type').notNull(),
    capacityType: text('capacity_type').notNull(),
    gpu: text('gpu').notNull(),
    gpusPerInstance: integer('gpus_per_instance').notNull(),
    state: text('state').notNull(),
    microsPerHour: bigint('micros_per_hour', { mode: 'number' }).notNull(),
    idempotencyKey: text('idempotency_key').notNull(),
    launchedAt: ms('launched_at').notNull(),
    runningAt: ms('running_at'),
    terminatedAt: ms('terminated_at'),
    terminationReason: text('termination_reason'),
    interruptAt: ms('interrupt_at'),
    /** Chosen for scale-down: gets no new work and ends when its leases end. */
    draining: boolean('draining').notNull().default(false),
  },
  (t) => [index('instances_live').on(t.state)],
);

export const plans = pgTable('plans', {
  id: text('id').primaryKey(),
  createdAt: ms('created_at').notNull(),
  policyVersion: integer('policy_version').notNull(),
  status: text('status').notNull(),
  backend: text('backend').notNull(),
  objective: jsonb('objective').notNull(),
  microsPerHour: bigint('micros_per_hour', { mode: 'number' }).notNull(),
  solveMs: integer('solve_ms').notNull(),
  /** Demand, fleet and unavailable offerings the plan was made from (summarised). */
  inputs: jsonb('inputs').notNull(),
  /** Targets, actions, pools, bound and gap. */
  result: jsonb('result').notNull(),
  explanation: jsonb('explanation').notNull(),
});

/** Every provider call the loop decided on; the id is the idempotency key sent to the provider. */
export const actions = pgTable(
  'actions',
  {
    id: text('id').primaryKey(),
    planId: text('plan_id').notNull(),
    kind: text('kind', { enum: ['provision', 'terminate'] }).notNull(),
    vendor: text('vendor').notNull(),
    offeringId: text('offering_id').notNull(),
    count: integer('count').notNull(),
    instanceIds: jsonb('instance_ids').$type<string[]>().notNull(),
    status: text('status', { enum: ['pending', 'done', 'failed'] }).notNull(),
    error: text('error'),
    createdAt: ms('created_at').notNull(),
    updatedAt: ms('updated_at').notNull(),
    /**
     * A provision's agent bootstrap (a cloud's instances start `gpubroker agent` with it): a repeat of the launch
     * must send the same start-up script, so the join token is kept in clear while the action is pending, and
     * cleared when it ends.
     */
    agent: jsonb('agent').$type<AgentBootstrap>(),
  },
  (t) => [index('actions_open').on(t.status)],
);

export const leases = pgTable(
  'leases',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    idempotencyKey: text('idempotency_key'),
    /** The request as accepted (validated), for idempotent replays and the API. */
    request: jsonb('request').notNull(),
    gpu: text('gpu').notNull(),
    count: integer('count').notNull(),
    status: text('status', { enum: ['pending', 'ready', 'failed', 'released', 'expired'] }).notNull(),
    reason: text('reason'),
    microsPerHour: bigint('micros_per_hour', { mode: 'number' }),
    createdAt: ms('created_at').notNull(),
    readyAt: ms('ready_at'),
    endedAt: ms('ended_at'),
    expiresAt: ms('expires_at'),
  },
  (t) => [
    uniqueIndex('leases_idempotency')
      .on(t.tenantId, t.idempotencyKey)
      .where(sql`${t.idempotencyKey} is not null`),
    index('leases_open').on(t.status),
  ],
);

export const leaseAllocations = pgTable(
  'lease_allocations',
  {
    leaseId: text('lease_id')
      .notNull()
      .references(() => leases.id),
    instanceId: text('instance_id').notNull(),
    gpuIndices: jsonb('gpu_indices').$type<number[]>().notNull(),
  },
  (t) => [primaryKey({ columns: [t.leaseId, t.instanceId] })],
);

/** Broker-wide settings that must survive restarts (the fleet id providers tag our instances with). */
export const settings = pgTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

/** Every price book version ever set (billing); the highest is in force. Version 0 (catalog + markup) is implied. */
export const priceBooks = pgTable('price_books', {
  version: integer('version').primaryKey(),
  book: jsonb('book').notNull(),
  createdAt: ms('created_at').notNull(),
  createdBy: text('created_by').notNull(),
  diff: jsonb('diff').notNull(),
});

/** Closed invoices, frozen: lines and total as they were when closed. Open invoices are computed, never stored. */
export const invoices = pgTable(
  'invoices',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    /** `YYYY-MM`, UTC. */
    month: text('month').notNull(),
    priceBookVersion: integer('price_book_version').notNull(),
    lines: jsonb('lines').notNull(),
    totalMicros: bigint('total_micros', { mode: 'number' }).notNull(),
    closedAt: ms('closed_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.month] })],
);

/** Deployed apps: their bundle and functions. Ephemeral apps (`gpubroker run`) are dropped when the broker restarts. */
export const apps = pgTable(
  'apps',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    name: text('name').notNull(),
    bundleId: text('bundle_id').notNull(),
    /** Function name → options as deployed (validated). */
    functions: jsonb('functions').notNull(),
    ephemeral: boolean('ephemeral').notNull(),
    createdAt: ms('created_at').notNull(),
    updatedAt: ms('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.name] })],
);

/**
 * Join tokens: each may register agents and do nothing else. `boundTo`, when set, is the idempotency key of the
 * launch the token was made for; such a token joins each instance of that launch once and no other machine.
 */
export const joinTokens = pgTable('join_tokens', {
  id: text('id').primaryKey(),
  tokenHash: text('token_hash').notNull().unique(),
  boundTo: text('bound_to'),
  expiresAt: ms('expires_at'),
  createdAt: ms('created_at').notNull(),
  createdBy: text('created_by').notNull(),
  revokedAt: ms('revoked_at'),
});

/** Joined agents, each with its own credential (the SHA-256 is kept); revoking one disconnects it. */
export const agents = pgTable(
  'agents',
  {
    id: text('id').primaryKey(),
    credentialHash: text('credential_hash').notNull().unique(),
    /** The instance it runs on: a provider's instance id, or `machines/<agent id>` for one of your own. */
    instanceId: text('instance_id').notNull(),
    hostname: text('hostname').notNull(),
    labels: jsonb('labels').notNull(),
    /** How it joined: `join:<token id>` or `operator:<tenant id>`. */
    joinedWith: text('joined_with').notNull(),
    createdAt: ms('created_at').notNull(),
    revokedAt: ms('revoked_at'),
  },
  (t) => [index('agents_instance').on(t.instanceId)],
);

/**
 * Function calls, written when the broker accepts them (before it answers 202) and again when they finish, so that
 * a broker crash loses none: unfinished calls are queued again after the restart, finished ones answer with their
 * result until they are older than the runtime keeps calls. Arguments and values are structured-clone bytes
 * (v8.serialize), base64.
 */
export const calls = pgTable(
  'calls',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    appTenantId: text('app_tenant_id').notNull(),
    app: text('app').notNull(),
    functionName: text('function_name').notNull(),
    args: text('args').notNull(),
    /** pending (queued or running when last written), succeeded, failed or cancelled. */
    status: text('status').notNull(),
    attempts: integer('attempts').notNull(),
    createdAt: ms('created_at').notNull(),
    startedAt: ms('started_at'),
    finishedAt: ms('finished_at'),
    error: jsonb('error'),
    value: text('value'),
  },
  (t) => [index('calls_finished_at').on(t.finishedAt)],
);

/**
 * Who did what to tokens and tenant limits, and when (policy and price-book changes have their own versioned
 * history). Written in the transaction of the change it records.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: text('id').primaryKey(),
    at: ms('at').notNull(),
    /** The principal's name (the operator's tenant name). */
    actor: text('actor').notNull(),
    /** `token.create`, `join-token.create`, `tenant.limits`. */
    action: text('action').notNull(),
    /** What it acted on: a tenant's name, a join token's id. */
    subject: text('subject').notNull(),
    /** What was set (never a secret). */
    detail: jsonb('detail').notNull(),
  },
  (t) => [index('audit_events_at').on(t.at)],
);
