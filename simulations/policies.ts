/**
 * The policies a simulation compares. A policy file is the broker's policy as `gpubroker policy set` takes it
 * (`broker/policy.ts`, validated by the same schema, errors naming the field) plus two simulation-only keys:
 *   "staticPeak": true   hold the workload's peak from the first minute and never scale down (see below);
 *   "function": { … }    options of the workload's function, as an app declares them (`runtime/function-spec.ts`):
 *                        `bufferContainers` and `minContainers` keep warm containers (no model load), and
 *                        `scaledownWindowMs`, `maxContainers`, `concurrency` change how it scales.
 * Fields a file leaves out take the simulation defaults (`SIMULATION_DEFAULTS`: re-plan every 5 minutes), then the
 * broker's defaults. Built-in presets (`PRESETS`) can be named instead of a file.
 *
 * Static peak reservation: the peak is the most GPUs the workload's requests hold at once if none waits (replayed
 * with the same scale and speed; calls count ⌈running / concurrency⌉ containers). From the first minute the plans
 * hold that many GPUs as a warm buffer, on-demand only, until the fleet has them (a provider may not have them all
 * at once: a stocked-out offering is tried again later); from then on the plans have no buffer and
 * `maxTerminateFraction: 0`, so nothing is ever stopped. If the runtime needs more at some moment (cold starts and
 * containers idling through the scale-down window hold GPUs too), the fleet grows, and keeps that too.
 */
import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { type BrokerPolicy, type BrokerPolicyInput, brokerPolicySchema } from '../broker/policy.ts';
import { DataFileError, issueField, ValidationError } from '../lib/errors.ts';
import { type FunctionOptions, parseFunctionOptions } from '../runtime/function-spec.ts';
import { CALL_FUNCTION_DEFAULTS } from './workloads/workload.ts';

export interface SimPolicy {
  readonly name: string;
  readonly broker: BrokerPolicy;
  readonly staticPeak: boolean;
  /** Overrides of the workload's function options. */
  readonly function: FunctionOverrides;
}

/** The function options a policy may change. */
export type FunctionOverrides = Pick<
  FunctionOptions,
  'bufferContainers' | 'minContainers' | 'maxContainers' | 'scaledownWindowMs' | 'concurrency'
>;
const FUNCTION_KEYS = [
  'bufferContainers',
  'minContainers',
  'maxContainers',
  'scaledownWindowMs',
  'concurrency',
];

/** What a simulation changes in the broker's defaults: one plan every 5 minutes. */
export const SIMULATION_DEFAULTS: BrokerPolicyInput = { planSchedule: '0 */5 * * * *' };

const buffer = (fraction: number): BrokerPolicyInput => ({
  buffer: { default: { gpus: 0, fraction }, perGpu: {} },
});

interface Preset {
  readonly input: BrokerPolicyInput;
  readonly staticPeak?: true;
  readonly function?: FunctionOverrides;
}

export const PRESETS: Readonly<Record<string, Preset>> = {
  'buffer-0': { input: buffer(0) },
  'buffer-5': { input: buffer(0.05) },
  'buffer-10': { input: buffer(0.1) },
  'buffer-20': { input: buffer(0.2) },
  'static-peak': { input: { spotMaxShare: 0 }, staticPeak: true },
  mip: { input: { ...buffer(0.1), solver: { backend: 'highs' } } },
  greedy: { input: { ...buffer(0.1), solver: { backend: 'greedy' } } },
  'spot-0': { input: { ...buffer(0.1), spotMaxShare: 0 } },
  'spot-50': { input: { ...buffer(0.1), spotMaxShare: 0.5 } },
  'buffer-10-warm': { input: buffer(0.1), function: { bufferContainers: 8 } },
};

/** A built-in policy by name. */
export function presetPolicy(name: string): SimPolicy {
  const preset = PRESETS[name];
  if (!preset)
    throw new ValidationError(
      '--policy',
      `no built-in policy "${name}" (${Object.keys(PRESETS).join(', ')})`,
    );
  return parsePolicy(
    {
      ...preset.input,
      ...(preset.staticPeak ? { staticPeak: true } : {}),
      ...(preset.function ? { function: preset.function } : {}),
    },
    name,
  );
}

/** A policy file, or a built-in's name when no such file exists. */
export function loadPolicy(nameOrFile: string): SimPolicy {
  let text: string;
  try {
    text = readFileSync(nameOrFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !nameOrFile.endsWith('.json')) {
      if (PRESETS[nameOrFile]) return presetPolicy(nameOrFile);
      throw new ValidationError(
        '--policy',
        `"${nameOrFile}" is neither a policy file nor a built-in policy (${Object.keys(PRESETS).join(', ')})`,
      );
    }
    throw new DataFileError(
      nameOrFile,
      undefined,
      undefined,
      `cannot read the policy: ${(error as Error).message}`,
    );
  }
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (error) {
    throw new DataFileError(nameOrFile, undefined, undefined, `not JSON: ${(error as Error).message}`);
  }
  return parsePolicy(input, basename(nameOrFile, extname(nameOrFile)), nameOrFile);
}

/** Validates a policy object (a file's content); errors name the file and the field (`policy.buffer.default`). */
export function parsePolicy(input: unknown, name: string, file = name): SimPolicy {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new DataFileError(file, undefined, 'policy', 'must be a JSON object');
  const { staticPeak = false, function: fn = {}, ...rest } = input as Record<string, unknown>;
  if (typeof staticPeak !== 'boolean')
    throw new DataFileError(file, undefined, 'policy.staticPeak', 'must be true or false');
  const overrides = functionOverrides(fn, file);
  const parsed = brokerPolicySchema.safeParse({ ...SIMULATION_DEFAULTS, ...rest });
  if (!parsed.success) {
    const { field, message } = issueField(parsed.error.issues[0]);
    throw new DataFileError(file, undefined, ['policy', field].filter(Boolean).join('.'), message);
  }
  return { name, broker: parsed.data, staticPeak, function: overrides };
}

function functionOverrides(input: unknown, file: string): FunctionOverrides {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new DataFileError(file, undefined, 'policy.function', 'must be an object of function options');
  const unknown = Object.keys(input).find((key) => !FUNCTION_KEYS.includes(key));
  if (unknown) throw new DataFileError(file, undefined, `policy.function.${unknown}`, 'unknown field');
  try {
    // Validated as a function's options are (any GPU will do for that): min ≤ max, integer ranges.
    parseFunctionOptions({ gpu: 'L4', ...CALL_FUNCTION_DEFAULTS, ...input }, 'policy.function');
  } catch (error) {
    if (error instanceof ValidationError)
      throw new DataFileError(file, undefined, error.field, error.message.slice(error.field.length + 2));
    throw error;
  }
  return input as FunctionOverrides;
}

/** The plans of a static peak reservation until the fleet holds the peak: `peakGpus` of the GPU type held, nothing stopped. */
export function staticPeakFirstPlan(policy: BrokerPolicy, gpu: string, peakGpus: number): BrokerPolicy {
  return {
    ...staticPeakLaterPlans(policy),
    buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { [gpu]: { gpus: peakGpus, fraction: 0 } } },
  };
}

/** Every plan once the peak is held: no buffer, and no instance stopped. */
export function staticPeakLaterPlans(policy: BrokerPolicy): BrokerPolicy {
  return { ...policy, buffer: { default: { gpus: 0, fraction: 0 }, perGpu: {} }, maxTerminateFraction: 0 };
}
