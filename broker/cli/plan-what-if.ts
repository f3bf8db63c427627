/**
 * `gpubroker plan --what-if FILE`: asks a running broker (`POST /v1/plans/what-if`) what it would plan under a
 * policy change, and prints that plan as `gpubroker plans show` prints one, then how it differs from the latest plan.
 * FILE holds the request body: `{ "policy": { … }, "demand": [ … ] }`. `plan` is the solver's command
 * (solver/cli.ts), registered here with this option added, so that the network stays out of solver/.
 */

import type { Command } from 'commander';
import { ValidationError } from '../../lib/errors.ts';
import { type ClientFlags, withClientOptions } from '../../sdk/cli/client-flags.ts';
import { brokerClient, printJson, talkTo } from '../../sdk/cli/client-options.ts';
import type { Schemas } from '../../sdk/wire.ts';
import { registerPlanCommand as registerOfflinePlan, type WhatIfCommand } from '../../solver/cli.ts';
import { plainTable } from './billing-format.ts';
import { renderPlan } from './plans.ts';
import { readJsonObjectFile } from './versions.ts';

type WhatIf = Schemas['WhatIf'];

interface WhatIfFlags extends ClientFlags {
  whatIf?: string;
  json?: boolean;
}

/** The offline flags, which mean nothing to a broker's what-if. */
const OFFLINE = [
  'demand',
  'buffer',
  'budget',
  'spotMax',
  'horizon',
  'backend',
  'timeLimit',
  'gap',
  'export',
  'catalog',
  'policy',
];

export const planWhatIf: WhatIfCommand = {
  options: (command) =>
    withClientOptions(
      command.option(
        '--what-if <file>',
        'ask a running broker instead: the plan it would make under a policy change in FILE ({ "policy": {…}, "demand"?: […] }) and how it differs from its latest plan',
      ),
    ),
  run: async (command) => {
    const flags = command.opts<WhatIfFlags>();
    if (flags.whatIf === undefined) return false;
    const offline = OFFLINE.find((name) => command.getOptionValueSource(name) === 'cli');
    if (offline)
      throw new ValidationError(
        `--${offline.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
        'does not go with --what-if: the broker plans from its own catalog, fleet and forecast (put policy changes and demand in the file)',
      );
    const body = readJsonObjectFile(flags.whatIf, 'the what-if', '{ "policy": { "spotMaxShare": 0.4 } }');
    const broker = brokerClient(flags);
    await talkTo(broker, async () => {
      const answer = await broker.call<WhatIf>('POST', '/v1/plans/what-if', body);
      if (flags.json) return printJson(answer);
      process.stdout.write(renderWhatIf(answer));
    });
    return true;
  },
};

/** `gpubroker plan`: the solver's offline plan, or with `--what-if FILE` a broker's. */
export function registerPlanCommand(program: Command): void {
  registerOfflinePlan(program, planWhatIf);
}

const usd = (n: number) => `${n < 0 ? '-' : ''}$${Math.abs(n).toFixed(2)}`;
const signed = (n: number, show: (v: number) => string = String) => `${n > 0 ? '+' : ''}${show(n)}`;

/** The what-if's plan, then its difference from the latest plan. */
export function renderWhatIf(answer: WhatIf): string {
  const { diff, against } = answer;
  const lines = [
    answer.plan
      ? renderPlan(answer.plan, { whatIf: true }).trimEnd()
      : 'nothing to plan: no demand and no fleet',
    '',
    against
      ? `against the latest plan ${against.id} (policy version ${against.policyVersion}):`
      : 'against no plan (none made yet):',
    `  spend ${usd(diff.usdPerHour.from)}/h → ${usd(diff.usdPerHour.to)}/h (${signed(diff.usdPerHour.change, usd)}/h)`,
    `  unmet GPUs ${diff.unmetGpus.from} → ${diff.unmetGpus.to} (${signed(diff.unmetGpus.change)})`,
  ];
  if (diff.pools.length === 0) lines.push('  pools: no change');
  else {
    const table = plainTable(
      ['vendor', 'region', 'instance type', 'GPU', 'capacity', 'from', 'to', 'change'],
      [5, 6, 7],
    );
    for (const p of diff.pools)
      table.push([
        p.vendor,
        p.region,
        p.instanceType,
        `${p.gpusPerInstance}× ${p.gpu}`,
        p.capacityType,
        p.from,
        p.to,
        signed(p.change),
      ]);
    lines.push(table.toString());
  }
  return `${lines.join('\n')}\n`;
}
