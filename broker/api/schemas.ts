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
export type LeaseStatus = z.infer<typeof leaseStatusSchema>;

export const allocationSchema = z
  .object({
    instanceId: z.string(),
    vendor: z.string(),
    region: z.string(),
    zone: z.string(),
    instanceType: z.string(),
    capacityType: z.string(),
    gpuIndices: z.array(z.number().int()),
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
  })
  .openapi('Lease');
export type Lease = z.infer<typeof leaseSchema>;

export const leaseListSchema = z.object({ leases: z.array(leaseSchema) }).openapi('LeaseList');

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
