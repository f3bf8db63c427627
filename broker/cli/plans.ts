/**
 * `gpubroker plans list | show ID | latest | buffer-curve` (operator): the plans the control loop made, and one with
 * what it holds, what it launched, what it could not cover and why (the binding constraints with their marginal
 * costs), printed as `gpubroker plan` prints its own; and what each size of a GPU type's warm buffer would cost and
 * save in waiting. A what-if's plan (`gpubroker plan --what-if`) prints the same way.
 */
import type { Command } from 'commander';
import { parseIntegerIn } from '../../lib/cli-args.ts';
import { ValidationError } from '../../lib/errors.ts';
import { type ClientFlags, withClientOptions } from '../../sdk/cli/client-flags.ts';
import { brokerClient, printJson, talkTo } from '../../sdk/cli/client-options.ts';
import type { Schemas } from '../../sdk/wire.ts';
import { renderPools, renderUnmet } from '../../solver/cli.ts';
import { plainTable } from './billing-format.ts';

type PlanSummary = Schemas['PlanSummary'];
type Plan = Schemas['Plan'];
type BufferCurve = Schemas['BufferCurve'];

const usd = (n: number) => `$${n.toFixed(2)}`;

/**
 * A plan as text: its pools, its status and cost, what it launched, what it left unmet, and why. A what-if's plan
 * (never stored) says so, and what it would launch.
 */
export function renderPlan(plan: Plan, o: { whatIf?: boolean } = {}): string {
  const demand = plan.inputs.demand
    .map((d) => `${d.gpu}${d.gangSize > 1 ? `x${d.gangSize}` : ''}@${d.regionGroup}: ${d.gpus.join('/')}`)
    .join(', ');
  const at = new Date(plan.createdAtMs).toISOString();
  const lines = [
    o.whatIf
      ? `what-if plan at ${at} (policy version ${plan.policyVersion} with the change; not stored, nothing done)`
      : `plan ${plan.id} at ${at} (policy version ${plan.policyVersion})`,
    `demand (GPUs per period): ${demand || 'none'}; ${plan.inputs.offerings} offerings, ${plan.inputs.unavailable.length} unavailable`,
    plan.pools.length > 0 ? renderPools(plan.pools) : 'holds nothing',
    `status ${plan.status} (${plan.backend}), solved in ${plan.solveMs} ms; spend ${usd(plan.usdPerHour)}/h; objective ${usd(plan.objective.objective)}, bound ${usd(plan.objective.bound)}, gap ${(plan.objective.gap * 100).toFixed(2)}%`,
    `${o.whatIf ? 'would launch' : 'launched'} ${plan.provision}, ${o.whatIf ? 'terminate' : 'terminated'} ${plan.terminate} instances${plan.stockOuts.length > 0 ? `; stock-outs: ${plan.stockOuts.join(', ')}` : ''}`,
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

  withClientOptions(
    plans
      .command('buffer-curve')
      .description(
        "a GPU type's warm buffer from 0 to --max GPUs: cost per hour and a request's expected wait",
      ),
  )
    .option('--gpu <type>', 'the GPU type, e.g. H100')
    .option('--max <gpus>', 'the largest buffer', '16')
    .option('--json', 'print the answer as JSON ({ gpu, loadGpus, bootMs, points })')
    .action(async (flags: BufferCurveFlags) => {
      if (flags.gpu === undefined) throw new ValidationError('--gpu', 'is required, e.g. --gpu H100');
      const max = parseIntegerIn('--max', flags.max, 0, 64);
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const curve = await broker.call<BufferCurve>(
          'GET',
          `/v1/plans/buffer-curve?gpu=${encodeURIComponent(flags.gpu as string)}&max=${max}`,
        );
        if (flags.json) return printJson(curve);
        process.stdout.write(renderBufferCurve(curve));
      });
    });
}

interface BufferCurveFlags extends ClientFlags {
  gpu?: string;
  max: string;
  json?: boolean;
}

/** The curve as a table, with the load and the boot it was estimated from. */
export function renderBufferCurve(curve: BufferCurve): string {
  const table = plainTable(['buffer GPUs', 'held GPUs', '$/h', 'P(wait)', 'expected wait'], [0, 1, 2, 3, 4]);
  for (const p of curve.points)
    table.push([
      p.bufferGpus,
      p.heldGpus,
      usd(p.usdPerHour),
      `${(p.waitProbability * 100).toFixed(1)}%`,
      `${(p.expectedWaitMs / 1000).toFixed(1)} s`,
    ]);
  return [
    `${curve.gpu}: forecast load ${curve.loadGpus} GPUs; a request that finds every held GPU busy waits one boot (${(curve.bootMs / 1000).toFixed(0)} s)`,
    table.toString(),
    'wait: M/G/∞ estimate, P(Poisson(load) ≥ held GPUs) × boot (see GET /v1/plans/buffer-curve)',
    '',
  ].join('\n');
}
