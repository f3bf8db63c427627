/**
 * `gpubroker plans list | show ID | latest` (operator): the plans the control loop made, and one with what it holds,
 * what it launched, what it could not cover and why (the binding constraints with their marginal costs), printed as
 * `gpubroker plan` prints its own.
 */
import type { Command } from 'commander';
import { parseIntegerIn } from '../../lib/cli-args.ts';
import type { Schemas } from '../../sdk/wire.ts';
import { renderPools, renderUnmet } from '../../solver/cli.ts';
import { plainTable } from './billing-format.ts';
import { brokerClient, type ClientFlags, printJson, talkTo, withClientOptions } from './client-options.ts';

type PlanSummary = Schemas['PlanSummary'];
type Plan = Schemas['Plan'];

const usd = (n: number) => `$${n.toFixed(2)}`;

/** A plan as text: its pools, its status and cost, what it launched, what it left unmet, and why. */
export function renderPlan(plan: Plan): string {
  const demand = plan.inputs.demand
    .map((d) => `${d.gpu}${d.gangSize > 1 ? `x${d.gangSize}` : ''}@${d.regionGroup}: ${d.gpus.join('/')}`)
    .join(', ');
  const lines = [
    `plan ${plan.id} at ${new Date(plan.createdAtMs).toISOString()} (policy version ${plan.policyVersion})`,
    `demand (GPUs per period): ${demand || 'none'}; ${plan.inputs.offerings} offerings, ${plan.inputs.unavailable.length} unavailable`,
    plan.pools.length > 0 ? renderPools(plan.pools) : 'holds nothing',
    `status ${plan.status} (${plan.backend}), solved in ${plan.solveMs} ms; spend ${usd(plan.usdPerHour)}/h; objective ${usd(plan.objective.objective)}, bound ${usd(plan.objective.bound)}, gap ${(plan.objective.gap * 100).toFixed(2)}%`,
    `launched ${plan.provision}, terminated ${plan.terminate} instances${plan.stockOuts.length > 0 ? `; stock-outs: ${plan.stockOuts.join(', ')}` : ''}`,
    `unmet GPUs ${plan.unmetGpus}${plan.unmet.length > 0 ? ` (${renderUnmet(plan.unmet)})` : ''}`,
  ];
  if (plan.explanation.length > 0) lines.push('why:', ...plan.explanation.map((e) => `  ${e.text}`));
  return `${lines.join('\n')}\n`;
}

interface PlansFlags extends ClientFlags {
  json?: boolean;
  limit: string;
}

export function registerPlansCommand(program: Command): void {
  const plans = program
    .command('plans')
    .description("the control loop's plans and why it made them (operator)");

  withClientOptions(plans.command('list').description('the latest plans, newest first'))
    .option('--limit <n>', 'how many', '20')
    .option('--json', 'print the answer as JSON ({ plans })')
    .action(async (flags: PlansFlags) => {
      const limit = parseIntegerIn('--limit', flags.limit, 1, 1_000);
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const { plans: list } = await broker.call<{ plans: PlanSummary[] }>(
          'GET',
          `/v1/plans?limit=${limit}`,
        );
        if (flags.json) return printJson({ plans: list });
        if (list.length === 0) return void process.stdout.write('no plan yet\n');
        const table = plainTable(
          ['plan', 'when', 'policy', 'status', '$/h', 'launched', 'terminated', 'unmet GPUs', 'solve ms'],
          [2, 4, 5, 6, 7, 8],
        );
        for (const p of list)
          table.push([
            p.id,
            new Date(p.createdAtMs).toISOString(),
            p.policyVersion,
            p.status,
            usd(p.usdPerHour),
            p.provision,
            p.terminate,
            p.unmetGpus,
            p.solveMs,
          ]);
        process.stdout.write(`${table.toString()}\n`);
      });
    });

  for (const [name, description] of [
    ['show', 'one plan with its inputs, result and explanation'],
    ['latest', 'the latest plan with its inputs, result and explanation'],
  ] as const) {
    const command = plans.command(name).description(description);
    if (name === 'show') command.argument('<id>', 'the plan id (gpubroker plans list)');
    withClientOptions(command)
      .option('--json', 'print the plan as JSON')
      .action(async (...args: unknown[]) => {
        const id = name === 'show' ? (args[0] as string) : undefined;
        const flags = (name === 'show' ? args[1] : args[0]) as PlansFlags;
        const broker = brokerClient(flags);
        await talkTo(broker, async () => {
          const plan = await broker.call<Plan>(
            'GET',
            id ? `/v1/plans/${encodeURIComponent(id)}` : '/v1/plans/latest',
          );
          if (flags.json) return printJson(plan);
          process.stdout.write(renderPlan(plan));
        });
      });
  }
}
