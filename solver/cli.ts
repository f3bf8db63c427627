import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import Table from 'cli-table3';
import type { Command } from 'commander';
import { parseDurationMs, parseFraction, parseIntegerIn, parsePositive } from '../lib/cli-args.ts';
import { ValidationError, validationErrorFromIssues } from '../lib/errors.ts';
import { parseJsonInput } from '../lib/json-input.ts';
import { BUNDLED_CATALOG_PATH, loadCatalog } from '../providers/catalog/load-catalog.ts';
import { parseDemandSpec } from './demand-spec.ts';
import { toLpFormat } from './lp-format.ts';
import { planCapacity, planningModel } from './plan.ts';
import { type PlanningPolicyInput, planningPolicySchema } from './policy.ts';
import type { Plan, PlanPool } from './types.ts';

interface PlanFlags {
  demand?: string;
  buffer?: string;
  budget?: string;
  spotMax?: string;
  horizon: string;
  backend?: string;
  timeLimit?: string;
  gap?: string;
  export?: string;
  json?: boolean;
  catalog: string;
  policy?: string;
}

/**
 * `plan --what-if FILE` asks a running broker instead (broker/cli/plan-what-if.ts): the dispatcher passes it in, so
 * that solver/ itself talks to no network.
 */
export interface WhatIfCommand {
  /** Adds its options (`--what-if`, the client's) to the command. */
  readonly options: (command: Command) => Command;
  /** Answers the command line when it asks for a what-if (true); false leaves it to the offline plan. */
  readonly run: (command: Command) => Promise<boolean>;
}

/** `gpubroker plan`: one offline plan for a demand spec against the catalog (or a broker's what-if). */
export function registerPlanCommand(program: Command, whatIf?: WhatIfCommand): void {
  const command = program
    .command('plan')
    .description(
      'plan the GPU pools to hold for a demand spec, at least cost (no server needed); --what-if asks a running broker',
    )
    .option(
      '--demand <spec>',
      'GPU:COUNT[xGANG]@GROUP, comma separated, e.g. "H100:64@us,H100:16x8@us,A100-80GB:24@eu"',
    )
    .option('--buffer <gpus|percent>', 'warm buffer per GPU type: GPUs (8) or a share of demand (10%)')
    .option('--budget <usd-per-hour>', 'spend ceiling in USD per hour')
    .option('--spot-max <percent>', 'largest share of each GPU type on spot, e.g. 40%')
    .option('--horizon <periods>', 'planning periods (the same demand in each)', '1')
    .option('--backend <name>', 'highs | glpk | greedy (default: the policy file’s, else highs)')
    .option('--time-limit <duration>', 'solver time limit, e.g. 10s')
    .option('--gap <percent>', 'relative MIP gap at which to stop, e.g. 1%')
    .option('--export <file>', 'write the model in CPLEX LP format')
    .option('--json', 'print the plan as one JSON object')
    .option('--catalog <file>', 'offerings CSV', BUNDLED_CATALOG_PATH)
    .option('--policy <file>', 'planning policy JSON; flags override its fields');
  (whatIf?.options(command) ?? command).action(async (flags: PlanFlags, self: Command) => {
    if (await whatIf?.run(self)) return;
    const plan = await runPlan(flags);
    process.stdout.write(flags.json ? `${JSON.stringify(plan)}\n` : renderPlan(plan));
  });
}

async function runPlan(flags: PlanFlags): Promise<Plan & { usdPerHour: number }> {
  if (flags.demand === undefined)
    throw new ValidationError(
      '--demand',
      'is required, e.g. --demand H100:64@us (or --what-if FILE to ask a broker)',
    );
  const policyInput: PlanningPolicyInput = flags.policy ? readPolicyFile(flags.policy) : {};
  if (flags.buffer !== undefined) {
    policyInput.buffer = {
      default: flags.buffer.endsWith('%')
        ? { gpus: 0, fraction: parseFraction('--buffer', flags.buffer) }
        : { gpus: parseIntegerIn('--buffer', flags.buffer, 0, 100_000), fraction: 0 },
      perGpu: {},
    };
  }
  if (flags.budget !== undefined)
    policyInput.budgetUsdPerHour = parsePositive('--budget', flags.budget, 10_000_000);
  if (flags.spotMax !== undefined) policyInput.spotMaxShare = parseFraction('--spot-max', flags.spotMax);
  if (flags.backend !== undefined && !['highs', 'glpk', 'greedy'].includes(flags.backend))
    throw new ValidationError('--backend', `"${flags.backend}" is not one of highs, glpk, greedy`);
  const solver = {
    ...(policyInput.solver ?? {}),
    ...(flags.backend !== undefined ? { backend: flags.backend as 'highs' | 'glpk' | 'greedy' } : {}),
  };
  if (flags.timeLimit !== undefined) solver.timeLimitMs = parseDurationMs('--time-limit', flags.timeLimit);
  if (flags.gap !== undefined) solver.relativeGap = parseFraction('--gap', flags.gap);
  policyInput.solver = solver;
  const parsed = planningPolicySchema.safeParse(policyInput);
  if (!parsed.success) throw validationErrorFromIssues('policy', parsed.error.issues);
  const policy = parsed.data;
  const horizon = parseIntegerIn('--horizon', flags.horizon, 1, 168);
  const offerings = loadCatalog(flags.catalog, { regionGroups: policy.regionGroups });
  const demand = parseDemandSpec(flags.demand, offerings, horizon);
  const input = { offerings, demand, policy };
  if (flags.export)
    writeFileSync(
      flags.export,
      toLpFormat(planningModel(input).lp, `gpubroker plan --demand "${flags.demand}"`),
    );
  const plan = await planCapacity({ ...input, threads: availableParallelism() });
  return { ...plan, usdPerHour: plan.cost.usdPerHour };
}

/**
 * The policy file, validated on its own before any flag overrides a field, with the schema and messages of
 * `policy set` (`policy.solver.backend: …`): a flag must not hide a mistake in the file.
 */
function readPolicyFile(path: string): PlanningPolicyInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ValidationError('--policy', `cannot read ${path}: ${(error as Error).message}`);
  }
  const input = parseJsonInput(text, 'policy');
  const parsed = planningPolicySchema.safeParse(input);
  if (!parsed.success) throw validationErrorFromIssues('policy', parsed.error.issues);
  return input as PlanningPolicyInput;
}

const usd = (v: number) =>
  `$${v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;

/** A plan's pools as a table, the most expensive first (`gpubroker plan`, `gpubroker plans show`). */
export function renderPools(
  pools: readonly (Pick<
    PlanPool,
    'vendor' | 'region' | 'instanceType' | 'gpu' | 'gpusPerInstance' | 'count' | 'usdPerHour'
  > & { readonly capacityType: string })[],
): string {
  const table = new Table({
    head: ['vendor', 'region', 'instance type', 'GPU', 'capacity', 'count', 'GPUs', 'USD/h'],
    style: { head: [], border: [], compact: true },
  });
  for (const p of [...pools].sort((a, b) => b.usdPerHour - a.usdPerHour))
    table.push([
      p.vendor,
      p.region,
      p.instanceType,
      `${p.gpusPerInstance}× ${p.gpu}`,
      p.capacityType,
      p.count,
      p.count * p.gpusPerInstance,
      usd(p.usdPerHour),
    ]);
  return table.toString();
}

/** Unmet demand in the first period: `H100x8@us: 16, L4@eu: 2`. */
export function renderUnmet(
  unmet: readonly { gpu: string; gangSize: number; regionGroup: string; gpus: readonly number[] }[],
): string {
  return unmet
    .map((u) => `${u.gpu}${u.gangSize > 1 ? `x${u.gangSize}` : ''}@${u.regionGroup}: ${u.gpus[0]}`)
    .join(', ');
}

/** The human-readable plan: pools, cost summary, explanation. */
export function renderPlan(plan: Plan): string {
  const lines = [
    renderPools(plan.pools),
    '',
    `status ${plan.status} (${plan.backend}${plan.fallbackReason ? `, ${plan.fallbackReason}` : ''}), solved in ${plan.solveMs} ms`,
    `spend ${usd(plan.cost.usdPerHour)}/h; objective ${usd(plan.objective)} over ${plan.periods} × ${plan.periodMinutes} min, bound ${usd(plan.bound)}, gap ${(plan.gap * 100).toFixed(2)}%`,
    `  instances ${usd(plan.cost.instancesUsd)}, start-up ${usd(plan.cost.startupUsd)}, spot interruptions ${usd(plan.cost.interruptionUsd)}, unmet penalty ${usd(plan.cost.unmetPenaltyUsd)}, buffer penalty ${usd(plan.cost.bufferPenaltyUsd)}`,
    `unmet GPUs ${plan.unmetGpus}${plan.unmet.length ? ` (${renderUnmet(plan.unmet)})` : ''}; buffer shortfall ${plan.bufferShortfallGpus} GPUs`,
    `model: ${plan.model.offeringsAfterReduction} of ${plan.model.offerings} offerings after exact reduction, ${plan.model.integers} integers, ${plan.model.constraints} rows`,
  ];
  if (plan.explanation.length) lines.push('why:', ...plan.explanation.map((e) => `  ${e.text}`));
  return `${lines.join('\n')}\n`;
}
