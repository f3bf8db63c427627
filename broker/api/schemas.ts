/**
 * The HTTP API's request and response shapes. The broker validates with them, the OpenAPI document is generated
 * from them, and the SDK takes its types from them (type-only imports), so the three cannot drift apart.
 */
import { z } from '@hono/zod-openapi';

export const leaseRequestSchema = z
  .object({
    gpu: z.string().min(1).max(32).openapi({ example: 'H100' }),
    count: z.number().int().min(1).max(1024).openapi({ example: 8 }),
    placement: z.enum(['single-node', 'same-region', 'any']).default('any'),
    regions: z.array(z.string().min(1).max(64)).min(1).max(64).optional(),
    vendors: z.array(z.string().min(1).max(32)).min(1).max(16).optional(),
    /**
     * `on-demand` also takes reserved capacity; `spot` only spot; `any` either (the default, because the plan may
     * cover demand with spot within the policy's spot share).
     */
    capacityType: z.enum(['on-demand', 'spot', 'any']).default('any'),
    maxUsdPerHour: z.number().positive().max(1_000_000).optional(),
    ttlSeconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 86_400)
      .optional(),
    idempotencyKey: z.string().min(1).max(255).optional(),
  })
  .strict()
  .openapi('LeaseRequest');
export type LeaseRequest = z.infer<typeof leaseRequestSchema>;
export type LeaseRequestInput = z.input<typeof leaseRequestSchema>;

export const leaseStatusSchema = z.enum(['pending', 'ready', 'failed', 'released', 'expired']);

export const allocationSchema = z
  .object({
    instanceId: z.string(),
    vendor: z.string(),
    region: z.string(),
    zone: z.string(),
    instanceType: z.string(),
    capacityType: z.string(),
    gpuIndices: z.array(z.number().int()),
    /** Where the machine can be reached (an IP address or host name its agent reports), while its agent is connected. */
    address: z.string().optional(),
  })
  .openapi('Allocation');

export const leaseSchema = z
  .object({
    id: z.string(),
    status: leaseStatusSchema,
    reason: z.string().nullable(),
    gpu: z.string(),
    count: z.number().int(),
    placement: z.enum(['single-node', 'same-region', 'any']),
    allocations: z.array(allocationSchema),
    /** What the lease costs per hour while ready (its share of the instances' prices). */
    usdPerHour: z.number().nullable(),
    createdAtMs: z.number().int(),
    readyAtMs: z.number().int().nullable(),
    endedAtMs: z.number().int().nullable(),
    expiresAtMs: z.number().int().nullable(),
    /** In lists: the lease's tenant (an operator lists everyone's). */
    tenant: z.string().optional(),
  })
  .openapi('Lease');
export type Lease = z.infer<typeof leaseSchema>;

export const leaseListSchema = z.object({ leases: z.array(leaseSchema) }).openapi('LeaseList');

export const healthSchema = z
  .object({
    ok: z.boolean(),
    /** Whether this replica runs the control loop (the others pass API calls to it). */
    leader: z.boolean(),
    lastTickAtMs: z.number().int().nullable(),
  })
  .openapi('Health');

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    /** The request field that was wrong (dotted path), when one was. */
    field: z.string().optional(),
  })
  .openapi('Problem');
export type Problem = z.infer<typeof problemSchema>;

export const policyVersionSchema = z
  .object({
    version: z.number().int(),
    policy: z.record(z.string(), z.unknown()),
    createdAtMs: z.number().int(),
    createdBy: z.string(),
    diff: z.array(z.object({ path: z.string(), from: z.unknown(), to: z.unknown() })),
  })
  .openapi('PolicyVersion');

export const tokenRequestSchema = z
  .object({
    tenant: z.string().min(1).max(63),
    role: z.enum(['tenant', 'operator']).default('tenant'),
    gpuQuota: z.number().int().min(0).max(1_000_000).nullable().optional(),
  })
  .strict()
  .openapi('TokenRequest');

export const tokenSchema = z
  .object({ token: z.string(), tenant: z.string(), role: z.string() })
  .openapi('Token');

export const execRequestSchema = z
  .object({
    command: z.string().min(1).max(4096),
    args: z.array(z.string().max(65_536)).max(1024).default([]),
    /** Added to the command's environment (CUDA_VISIBLE_DEVICES is always the lease's GPUs). */
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().max(65_536)).default({}),
    /** Which of the lease's machines, by the order of its allocations (default 0: the first). */
    node: z.number().int().min(0).max(1023).default(0),
  })
  .strict()
  .openapi('ExecRequest');

/** One line of an exec's answer (application/x-ndjson): output as it comes, then the exit. */
export const execEventSchema = z
  .union([
    z.object({ stream: z.enum(['stdout', 'stderr']), data: z.string().describe('base64 of the bytes') }),
    z.object({
      exit: z.object({
        code: z.number().int().nullable(),
        signal: z.string().nullable(),
        error: z.string().optional(),
      }),
    }),
  ])
  .openapi('ExecEvent');

export const joinTokenRequestSchema = z
  .object({
    /** How long the token may be used to join, ms (default: until revoked). */
    ttlMs: z
      .number()
      .int()
      .min(1)
      .max(365 * 24 * 3_600_000)
      .optional(),
  })
  .strict()
  .openapi('JoinTokenRequest');

export const joinTokenSchema = z
  .object({
    token: z.string(),
    id: z.string(),
    /** ISO time after which it joins nothing; null: until revoked. */
    expiresAt: z.string().nullable(),
  })
  .openapi('JoinToken');

export const agentSchema = z
  .object({
    agentId: z.string(),
    instanceId: z.string(),
    hostname: z.string(),
    labels: z.record(z.string(), z.string()),
    joinedWith: z.string(),
    createdAt: z.string(),
    revokedAt: z.string().nullable(),
    /** Present while it is connected. */
    connection: z
      .object({
        gpus: z.array(z.object({ index: z.number().int(), name: z.string() })),
        health: z.object({
          ok: z.boolean(),
          problems: z.array(z.string()),
          driverVersion: z.string().optional(),
        }),
        usdPerHour: z.number().nullable(),
        connectedAt: z.string(),
        lastSeenAt: z.string(),
        placeable: z.boolean(),
      })
      .nullable(),
  })
  .openapi('Agent');

export const agentListSchema = z.object({ agents: z.array(agentSchema) }).openapi('AgentList');

const isoTime = z
  .string()
  .refine((text) => /^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(Date.parse(text)), {
    message: 'must be an ISO 8601 date or time, e.g. 2026-11-01 or 2026-11-23T10:00:00Z',
  });

export const usageQuerySchema = z
  .object({
    from: isoTime
      .optional()
      .openapi({ description: 'Start (inclusive); default: the start of this month (UTC)' }),
    to: isoTime.optional().openapi({ description: 'End (exclusive); default: now' }),
    groupBy: z.enum(['function', 'gpu', 'day', 'lease']).default('gpu'),
    tenant: z.string().min(1).max(63).optional().openapi({ description: 'Operators: one tenant only' }),
  })
  .strict();

export const usageRowSchema = z.object({
  tenant: z.string(),
  key: z.string().openapi({ description: 'The function, GPU type, day (YYYY-MM-DD) or lease' }),
  seconds: z.number().int(),
  gpuSeconds: z.number().int(),
  amountMicroUsd: z.number().int(),
});

export const usageSchema = z
  .object({
    fromMs: z.number().int(),
    toMs: z.number().int(),
    groupBy: z.string(),
    rows: z.array(usageRowSchema),
    totalGpuSeconds: z.number().int(),
    totalMicroUsd: z.number().int(),
  })
  .openapi('Usage');

export const invoiceLineSchema = z.object({
  gpu: z.string(),
  function: z.string().optional(),
  lease: z.string().optional(),
  seconds: z.number().int(),
  gpuSeconds: z.number().int(),
  coreSeconds: z.number().int(),
  mibSeconds: z.number().int(),
  rateMicroUsd: z.number().int(),
  amountMicroUsd: z.number().int(),
  lateFrom: z.string().optional(),
});

export const invoiceSchema = z
  .object({
    tenant: z.string(),
    month: z.string(),
    status: z.enum(['open', 'closed']),
    priceBookVersion: z.number().int(),
    lines: z.array(invoiceLineSchema),
    totalMicroUsd: z.number().int(),
  })
  .openapi('Invoice');
export type InvoiceView = z.infer<typeof invoiceSchema>;

export const invoiceListSchema = z.object({ invoices: z.array(invoiceSchema) }).openapi('InvoiceList');

export const invoiceQuerySchema = z
  .object({
    tenant: z.string().min(1).max(63).optional().openapi({ description: 'Operators: one tenant only' }),
  })
  .strict();

export const monthParam = z.object({
  month: z
    .string()
    .regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'must be a month like 2026-11')
    .openapi({ example: '2026-11' }),
});

export const costsQuerySchema = z.object({ from: isoTime.optional(), to: isoTime.optional() }).strict();

const gpuCostsSchema = z.object({
  gpu: z.string(),
  provisionedGpuSeconds: z.number().int(),
  billedGpuSeconds: z.number().int(),
  utilization: z.number(),
  costMicroUsd: z.number().int(),
  revenueMicroUsd: z.number().int(),
  marginMicroUsd: z.number().int(),
});

export const costsSchema = z
  .object({
    fromMs: z.number().int(),
    toMs: z.number().int(),
    byGpu: z.array(gpuCostsSchema),
    total: gpuCostsSchema.omit({ gpu: true }),
  })
  .openapi('Costs');

export const priceBookVersionSchema = z
  .object({
    version: z.number().int(),
    book: z.record(z.string(), z.unknown()),
    /** Effective micro-USD per GPU-second per GPU type (explicit or catalog + markup). */
    gpuRates: z.record(z.string(), z.number().int()),
    createdAtMs: z.number().int(),
    createdBy: z.string(),
    diff: z.array(z.object({ path: z.string(), from: z.unknown(), to: z.unknown() })),
  })
  .openapi('PriceBookVersion');

/** A spend limit in USD: limits are kept in whole micro-USD, so a smaller one would be stored as 0 (spend nothing). */
const usdLimit = z.number().min(0.000001, 'must be at least 0.000001 (one micro-USD)').max(1e9);

export const tenantLimitsSchema = z
  .object({
    gpuQuota: z.number().int().min(0).max(1_000_000).nullable().optional(),
    spendLimitUsdPerHour: usdLimit.nullable().optional(),
    spendLimitUsdPerMonth: usdLimit.nullable().optional(),
    onSpendLimit: z.enum(['continue', 'stop']).optional(),
  })
  .strict()
  .openapi('TenantLimits');

/** A tenant and its limits (`GET /v1/tenants`). */
export const tenantSchema = z
  .object({
    name: z.string(),
    createdAtMs: z.number().int(),
    gpuQuota: z.number().int().nullable(),
    spendLimitUsdPerHour: z.number().nullable(),
    spendLimitUsdPerMonth: z.number().nullable(),
    onSpendLimit: z.enum(['continue', 'stop']),
  })
  .openapi('Tenant');

/** A plan the control loop made, in brief (`GET /v1/plans`). */
export const planSummarySchema = z
  .object({
    id: z.string(),
    createdAtMs: z.number().int(),
    policyVersion: z.number().int(),
    status: z.string(),
    backend: z.string(),
    usdPerHour: z.number(),
    solveMs: z.number().int(),
    unmetGpus: z.number().int(),
    /** Instances the plan launched and terminated. */
    provision: z.number().int(),
    terminate: z.number().int(),
  })
  .openapi('PlanSummary');

const planPoolSchema = z.object({
  offeringId: z.string(),
  vendor: z.string(),
  region: z.string(),
  regionGroup: z.string(),
  instanceType: z.string(),
  gpu: z.string(),
  gpusPerInstance: z.number().int(),
  capacityType: z.string(),
  count: z.number().int(),
  usdPerHour: z.number(),
});

/** A plan with what it was made from and why (`GET /v1/plans/{id}`, `/v1/plans/latest`). */
export const planDetailSchema = planSummarySchema
  .extend({
    objective: z.object({
      objective: z.number(),
      bound: z.number(),
      gap: z.number(),
      cost: z.record(z.string(), z.number()),
    }),
    inputs: z.object({
      demand: z.array(
        z.object({
          gpu: z.string(),
          regionGroup: z.string(),
          gangSize: z.number().int(),
          gpus: z.array(z.number()),
        }),
      ),
      fleet: z.array(z.object({ offeringId: z.string(), count: z.number().int() })),
      unavailable: z.array(z.string()),
      offerings: z.number().int(),
    }),
    pools: z.array(planPoolSchema),
    actions: z.array(
      z.object({ offeringId: z.string(), provision: z.number().int(), terminate: z.number().int() }),
    ),
    unmet: z.array(
      z.object({
        gpu: z.string(),
        regionGroup: z.string(),
        gangSize: z.number().int(),
        gpus: z.array(z.number()),
      }),
    ),
    stockOuts: z.array(z.string()),
    explanation: z.array(
      z.object({
        constraint: z.string(),
        kind: z.string(),
        marginalUsdPerHour: z.number(),
        bindingAtPlan: z.boolean(),
        text: z.string(),
      }),
    ),
  })
  .openapi('Plan');

/** A policy change to try (`POST /v1/plans/what-if`): nothing is launched, terminated or stored. */
export const whatIfRequestSchema = z
  .object({
    policy: z.record(z.string(), z.unknown()).default({}).openapi({
      description:
        'A partial policy, merged onto the policy in force (objects key by key; any other value replaces) and validated as PUT /v1/policy validates',
    }),
    demand: z
      .array(
        z
          .object({
            gpu: z.string().min(1).max(32),
            regionGroup: z.string().min(1).max(64),
            gangSize: z.number().int().min(1).max(64).default(1),
            gpus: z.union([
              z.number().int().min(0).max(1_000_000),
              z.array(z.number().int().min(0).max(1_000_000)).min(1).max(48),
            ]),
          })
          .strict(),
      )
      .max(1_000)
      .optional()
      .openapi({
        description:
          'Demand instead of the forecast: GPUs per (GPU type, region group, gang size), one number for every planning period or one per period',
      }),
  })
  .strict()
  .openapi('WhatIfRequest');

const changeSchema = z.object({ from: z.number(), to: z.number(), change: z.number() });

/** The plan a policy change would lead to, and how it differs from the latest plan. */
export const whatIfSchema = z
  .object({
    plan: planDetailSchema.nullable().openapi({
      description: 'The plan the loop would make now (id `what-if`, never stored); null: nothing to plan',
    }),
    policy: z.record(z.string(), z.unknown()).openapi({ description: 'The policy it was planned under' }),
    against: planSummarySchema.nullable().openapi({ description: 'The latest plan; null: none yet' }),
    diff: z.object({
      usdPerHour: changeSchema,
      unmetGpus: changeSchema,
      pools: z
        .array(planPoolSchema.omit({ count: true, usdPerHour: true }).extend(changeSchema.shape))
        .openapi({ description: 'Pools whose instance count changes, from the latest plan to this one' }),
    }),
  })
  .openapi('WhatIf');

export const bufferCurveQuerySchema = z
  .object({
    gpu: z.string().min(1).max(32).openapi({ example: 'H100' }),
    max: z.coerce.number().int().min(0).max(64).default(16).openapi({ description: 'Largest buffer, GPUs' }),
  })
  .strict();

/** Cost and expected wait of a GPU type's warm buffer from 0 to `max` GPUs (`GET /v1/plans/buffer-curve`). */
export const bufferCurveSchema = z
  .object({
    gpu: z.string(),
    loadGpus: z.number().openapi({ description: 'Forecast GPUs of the type in the first period' }),
    bootMs: z.number().int().openapi({ description: "A request's wait when no held GPU is free" }),
    points: z.array(
      z.object({
        bufferGpus: z.number().int(),
        usdPerHour: z.number(),
        heldGpus: z.number().int(),
        waitProbability: z.number(),
        expectedWaitMs: z.number().int(),
        status: z.string(),
      }),
    ),
  })
  .openapi('BufferCurve');

/** A token creation or tenant-limit change: who, when, what (`GET /v1/audit`). */
export const auditEventSchema = z
  .object({
    id: z.string(),
    atMs: z.number().int(),
    actor: z.string(),
    action: z.enum(['token.create', 'join-token.create', 'tenant.limits']),
    subject: z.string(),
    detail: z.record(z.string(), z.unknown()),
  })
  .openapi('AuditEvent');

/** One instance of the fleet (`GET /v1/fleet`). */
export const fleetInstanceSchema = z
  .object({
    id: z.string(),
    vendor: z.string(),
    region: z.string(),
    zone: z.string(),
    instanceType: z.string(),
    capacityType: z.enum(['on-demand', 'spot', 'reserved']),
    gpu: z.string(),
    gpus: z.number().int(),
    allocatedGpus: z.number().int().openapi({ description: 'GPUs held by leases and containers' }),
    state: z.enum(['pending', 'running', 'terminating', 'terminated']),
    draining: z.boolean(),
    usdPerHour: z.number(),
    launchedAtMs: z.number().int(),
    runningAtMs: z.number().int().nullable(),
  })
  .openapi('FleetInstance');

/** The fleet and its warm buffer (operator). */
export const fleetSchema = z
  .object({
    instances: z.array(fleetInstanceSchema),
    buffers: z.array(
      z.object({
        gpu: z.string(),
        targetGpus: z.number().int().openapi({ description: 'The warm buffer the latest tick aimed at' }),
        readyGpus: z.number().int().openapi({ description: 'GPUs of running instances not leased' }),
      }),
    ),
    usdPerHour: z.number(),
  })
  .openapi('Fleet');

/** A function's container (`GET /v1/containers`). */
export const containerSchema = z
  .object({
    id: z.string(),
    tenant: z.string(),
    app: z.string(),
    function: z.string(),
    state: z.string(),
    instanceId: z.string(),
    gpu: z.string(),
    gpuIndices: z.array(z.number().int()),
    vendor: z.string(),
    region: z.string(),
    capacityType: z.string(),
    inFlight: z.number().int(),
    placedAtMs: z.number().int(),
    readyAtMs: z.number().int().optional(),
    coldStartMs: z.number().int().optional(),
    reason: z.string().optional(),
  })
  .openapi('Container');

/** Containers, calls in flight and recent failures of the functions a principal can see. */
export const containersSchema = z
  .object({
    containers: z.array(containerSchema),
    calls: z.array(
      z.object({
        tenant: z.string(),
        app: z.string(),
        function: z.string(),
        queued: z.number().int(),
        running: z.number().int(),
      }),
    ),
    failures: z.array(
      z.object({
        callId: z.string(),
        tenant: z.string(),
        app: z.string(),
        function: z.string(),
        attempts: z.number().int(),
        error: z.string(),
        atMs: z.number().int(),
      }),
    ),
  })
  .openapi('Containers');

// ---- Functions: options, apps, calls, logs, layers ----

/** Most GPUs one container asks for on one node (the largest instances carry 8; a few carry 16). */
export const MAX_GPUS_PER_CONTAINER = 16;
const DAY_MS = 24 * 3_600_000;

/** One entry of a function's `gpu`: a GPU type and how many of it on one node. */
export interface GpuWant {
  readonly gpu: string;
  readonly count: number;
}

const GPU_ENTRY = /^([A-Za-z0-9][A-Za-z0-9._-]*)(?::(\d+))?$/;

function parseGpuEntry(entry: string): GpuWant | undefined {
  const match = GPU_ENTRY.exec(entry.trim());
  const count = match?.[2] === undefined ? 1 : Number(match[2]);
  if (!match || !Number.isSafeInteger(count) || count < 1 || count > MAX_GPUS_PER_CONTAINER) return undefined;
  return { gpu: match[1] as string, count };
}

const gpuSchema = z
  .union(
    [z.string(), z.array(z.string()).min(1, 'give at least one GPU type').max(8, 'at most 8 preferences')],
    {
      error: 'expected a GPU type ("H100", "H100:8") or a list of them',
    },
  )
  .transform((value, ctx) => {
    const entries = typeof value === 'string' ? [value] : value;
    const wants: GpuWant[] = [];
    entries.forEach((entry, i) => {
      const want = parseGpuEntry(entry);
      const path = typeof value === 'string' ? [] : [i];
      if (!want)
        ctx.addIssue({
          code: 'custom',
          path,
          message: `expected a GPU type, optionally with a count from 1 to ${MAX_GPUS_PER_CONTAINER} ("H100", "H100:8"), got "${entry}"`,
        });
      else if (wants.some((w) => w.gpu === want.gpu && w.count === want.count))
        ctx.addIssue({ code: 'custom', path, message: `"${entry}" is listed twice` });
      else wants.push(want);
    });
    return wants;
  });

export const imageSchema = z
  .object({
    base: z.literal('node20'),
    npm: z.array(z.string().min(1).max(1_000).regex(/^\S+$/, 'must have no spaces')).max(200).default([]),
    env: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a variable name'), z.string().max(32_768))
      .default({}),
    /** The layer with the npm packages (`PUT /v1/layers/{id}`); required when `npm` is not empty. */
    layer: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 in hex')
      .optional(),
  })
  .strict()
  .superRefine((image, ctx) => {
    if (image.npm.length > 0 && !image.layer)
      ctx.addIssue({
        code: 'custom',
        path: ['layer'],
        message: 'an image with npm packages needs its layer (gpubroker run and deploy build and upload it)',
      });
  })
  .openapi('Image');
export type ImageOptions = z.output<typeof imageSchema>;

export const functionOptionsSchema = z
  .object({
    /** GPU type, `TYPE:N` for N GPUs on one node, or a preference list of those. */
    gpu: gpuSchema,
    /** CPU cores per container. */
    cpu: z.number().int().min(1).max(256).default(1),
    memoryMiB: z
      .number()
      .int()
      .min(128)
      .max(4 * 1024 * 1024)
      .default(4096),
    /** Containers kept even with no inputs. */
    minContainers: z.number().int().min(0).max(10_000).default(0),
    maxContainers: z.number().int().min(1).max(10_000).default(100),
    /** Idle containers held on top of what the load needs, so that a burst starts warm. */
    bufferContainers: z.number().int().min(0).max(10_000).default(0),
    /** How long a container stays idle before it stops (if the count stays at or above the desired one). */
    scaledownWindowMs: z.number().int().min(1_000).max(DAY_MS).default(60_000),
    /** Longest time one input may run; the container is killed past it. */
    timeoutMs: z.number().int().min(1).max(DAY_MS).default(300_000),
    /** Times an input is run again on another container when its container dies. */
    retries: z.number().int().min(0).max(10).default(0),
    /** Inputs one container handles at once. */
    concurrency: z.number().int().min(1).max(1_000).default(1),
    /**
     * What the containers run on: the base, npm packages (installed by the CLI into a layer it uploaded as
     * `layer`, the hash of the recipe) and environment variables.
     */
    image: imageSchema.optional(),
    /** `egress`: containers reach the network as the machine does; `none`: loopback only. */
    network: z.enum(['egress', 'none']).default('egress'),
    /** Regions the containers may run in (any when absent). */
    regions: z.array(z.string().trim().min(1)).min(1).optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.minContainers > o.maxContainers)
      ctx.addIssue({
        code: 'custom',
        path: ['minContainers'],
        message: `must not exceed maxContainers (${o.maxContainers})`,
      });
  })
  .transform(({ gpu, regions, ...rest }) => ({
    ...rest,
    gpus: gpu,
    ...(regions === undefined ? {} : { regions: [...new Set(regions)] }),
  }))
  .openapi('FunctionOptions');

export const appNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'use 1–63 lower-case letters, digits or "-"');
export const bundleIdSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be the SHA-256 of the bundle, in hex');
/** An app to deploy: its bundle (uploaded first) and its functions' options by name. */
export const deploySchema = z
  .object({
    bundleId: bundleIdSchema,
    functions: z.record(z.string().regex(/^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/), functionOptionsSchema),
    ephemeral: z.boolean().default(false),
  })
  .strict()
  .openapi('Deploy');

/** A call: its status, value or error, attempts and times. */
export const callViewSchema = z
  .object({
    id: z.string(),
    status: z.enum(['pending', 'running', 'succeeded', 'failed', 'cancelled']),
    value: z.unknown().optional(),
    error: z.object({ message: z.string(), stack: z.string().optional(), name: z.string() }).optional(),
    attempts: z.number().int(),
    createdAtMs: z.number().int(),
    startedAtMs: z.number().int().optional(),
    finishedAtMs: z.number().int().optional(),
  })
  .openapi('Call');

/** A deployed app: its bundle, version, functions, containers and calls. */
export const appStatusSchema = z
  .object({
    name: z.string(),
    bundleId: z.string(),
    version: z.number().int(),
    functions: z.array(z.string()),
    ephemeral: z.boolean(),
    containers: z.object({ total: z.number().int(), ready: z.number().int() }),
    calls: z.object({ done: z.number().int(), total: z.number().int() }),
  })
  .openapi('AppStatus');

/** One line a container wrote (the app's log stream is NDJSON of these). */
export const logLineSchema = z
  .object({
    containerId: z.string(),
    function: z.string(),
    stream: z.enum(['stdout', 'stderr']),
    text: z.string(),
    atMs: z.number().int(),
  })
  .openapi('LogLine');

export const layerIdSchema = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 in hex')
  .openapi({ description: "The hash of the image's recipe (base, npm packages, platform)" });
/** An image layer: its tarball's SHA-256 and size. */
export const layerSchema = z
  .object({ id: z.string(), sha256: z.string(), bytes: z.number().int() })
  .openapi('Layer');
/** What PUT /v1/bundles/{id} answers: whether the bytes were new. */
export const bundleUploadSchema = z.object({ id: z.string(), uploaded: z.boolean() }).openapi('BundleUpload');
