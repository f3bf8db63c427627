/**
 * A function's options as a user writes them (`FunctionOptions`) and as the runtime uses them (`FunctionSpec`).
 * Their schema is the wire contract's (`broker/api/schemas.ts`): `gpu` is one GPU type (`'H100'`), several on one
 * node (`'H100:8'`), or a preference list tried in order (`['H100', 'A100-80GB:2']`); it parses into
 * `gpus: { gpu, count }[]`.
 */
import type { z } from 'zod';
import { functionOptionsSchema } from '../broker/api/schemas.ts';
import { validationErrorFromIssues } from '../lib/errors.ts';

export { functionOptionsSchema, type GpuWant, MAX_GPUS_PER_CONTAINER } from '../broker/api/schemas.ts';
/** Options as written (defaults omitted). */
export type FunctionOptions = z.input<typeof functionOptionsSchema>;
/** Parsed options: `gpus` in preference order, every default filled in. */
export type FunctionSpec = z.output<typeof functionOptionsSchema>;

/** Validates a function's options; throws ValidationError naming the field (`gpu`, `gpu.1`, `retries`). */
export function parseFunctionOptions(input: unknown, prefix = ''): FunctionSpec {
  const parsed = functionOptionsSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw validationErrorFromIssues(prefix, parsed.error.issues);
}
