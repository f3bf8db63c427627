/**
 * `gpubroker costs` (operator): per GPU type, what the fleet cost (provisioned GPU-hours at their list prices)
 * against what tenants were billed, with utilisation (billed / provisioned GPU-seconds) and margin.
 */
import type { Command } from 'commander';
import { type ClientFlags, withClientOptions } from '../../sdk/cli/client-flags.ts';
import { brokerClient, printJson, talkTo } from '../../sdk/cli/client-options.ts';
import type { CostReport } from '../../sdk/index.ts';
import { formatHours, formatMicroUsd, parseTimeFlag, plainTable } from './billing-format.ts';

interface CostsFlags extends ClientFlags {
  from?: string;
  to?: string;
  json?: boolean;
}

export function registerCostsCommand(program: Command): void {
  withClientOptions(
    program
      .command('costs')
      .description('fleet cost against billed usage per GPU type: utilisation and margin (operator)'),
  )
    .option('--from <date>', 'start, inclusive (ISO 8601); default: the start of this month (UTC)')
    .option('--to <date>', 'end, exclusive (ISO 8601); default: now')
    .option('--json', 'print the answer as JSON ({ fromMs, toMs, byGpu, total })')
    .action(async (flags: CostsFlags) => {
      const window = {
        ...(flags.from !== undefined ? { from: parseTimeFlag('--from', flags.from) } : {}),
        ...(flags.to !== undefined ? { to: parseTimeFlag('--to', flags.to) } : {}),
      };
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const costs = await broker.costs(window);
        if (flags.json) return printJson(costs);
        process.stdout.write(renderCosts(costs));
      });
    });
}

function renderCosts(costs: CostReport): string {
  const window = `from ${new Date(costs.fromMs).toISOString()} to ${new Date(costs.toMs).toISOString()}`;
  const table = plainTable(
    ['GPU', 'provisioned GPU-h', 'billed GPU-h', 'utilisation', 'cost', 'revenue', 'margin'],
    [1, 2, 3, 4, 5, 6],
  );
  for (const row of [...costs.byGpu, { gpu: 'all', ...costs.total }])
    table.push([
      row.gpu,
      formatHours(row.provisionedGpuSeconds),
      formatHours(row.billedGpuSeconds),
      `${(row.utilization * 100).toFixed(1)} %`,
      formatMicroUsd(row.costMicroUsd),
      formatMicroUsd(row.revenueMicroUsd),
      formatMicroUsd(row.marginMicroUsd),
    ]);
  return `costs ${window}\n${table.toString()}\n`;
}
