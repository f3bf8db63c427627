/**
 * A function's options as a user writes them (`FunctionOptions`) and as the runtime uses them (`FunctionSpec`).
 * `gpu` is one GPU type (`'H100'`), several on one node (`'H100:8'`), or a preference list tried in order
 * (`['H100', 'A100-80GB:2']`); it parses into `gpus: { gpu, count }[]`.
 */
import { z } from 'zod';
import { ValidationError, validationErrorFromIssues } from '../lib/errors.ts';

/** Most GPUs one container asks for on one node (the largest instances carry 8; a few carry 16). */
export const MAX_GPUS_PER_CONTAINER = 16;
const DAY_MS = 24 * 3_600_000;

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
  });
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
  }));

/** Options as written (defaults omitted). */
export type FunctionOptions = z.input<typeof functionOptionsSchema>;
/** Parsed options: `gpus` in preference order, every default filled in. */
export type FunctionSpec = z.output<typeof functionOptionsSchema>;
export interface GpuWant {
  readonly gpu: string;
  readonly count: number;
}

/** Validates a function's options; throws ValidationError naming the field (`gpu`, `gpu.1`, `retries`). */
export function parseFunctionOptions(input: unknown, prefix = ''): FunctionSpec {
  const parsed = functionOptionsSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  // zod reports unknown keys on the object itself; name the key instead.
  if (issue?.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    throw new ValidationError([prefix, key].filter(Boolean).join('.'), 'unknown option');
  }
  throw validationErrorFromIssues(prefix, parsed.error.issues);
}
