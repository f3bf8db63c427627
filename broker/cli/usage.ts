/**
 * `gpubroker usage`: metered usage in a window, one row per tenant × GPU type, lease, function or day, priced with
 * the price book, and a total. A tenant token sees its own usage; an operator every tenant's or `--tenant`'s.
 */
import type { Command } from 'commander';
import { type ClientFlags, withClientOptions } from '../../sdk/cli/client-flags.ts';
import { brokerClient, parseChoice, printJson, talkTo } from '../../sdk/cli/client-options.ts';
import type { Usage, UsageQuery } from '../../sdk/index.ts';
import { formatMicroUsd, parseTimeFlag, plainTable } from './billing-format.ts';

const GROUPINGS = ['function', 'gpu', 'day', 'lease'] as const;

interface UsageFlags extends ClientFlags {
  from?: string;
  to?: string;
  groupBy?: string;
  tenant?: string;
  json?: boolean;
}

export function registerUsageCommand(program: Command): void {
  withClientOptions(
    program
      .command('usage')
      .description('metered usage and its price: yours, or (operator) every tenant’s; default: this month'),
  )
    .option(
      '--from <date>',
      'start, inclusive (ISO 8601, e.g. 2026-11-01); default: the start of this month (UTC)',
    )
    .option('--to <date>', 'end, exclusive (ISO 8601); default: now')
    .option('--group-by <key>', 'function | gpu | day | lease (default gpu)')
    .option('--tenant <name>', 'operators: this tenant only')
    .option(
      '--json',
      'print the answer as JSON ({ fromMs, toMs, groupBy, rows, totalGpuSeconds, totalMicroUsd })',
    )
    .action(async (flags: UsageFlags) => {
      const query: UsageQuery = {
        ...(flags.from !== undefined ? { from: parseTimeFlag('--from', flags.from) } : {}),
        ...(flags.to !== undefined ? { to: parseTimeFlag('--to', flags.to) } : {}),
        ...(flags.groupBy !== undefined
          ? { groupBy: parseChoice('--group-by', flags.groupBy, GROUPINGS) }
          : {}),
        ...(flags.tenant !== undefined ? { tenant: flags.tenant } : {}),
      };
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const usage = await broker.usage(query);
        if (flags.json) return printJson(usage);
        process.stdout.write(renderUsage(usage));
      });
    });
}

function renderUsage(usage: Usage): string {
  const window = `from ${new Date(usage.fromMs).toISOString()} to ${new Date(usage.toMs).toISOString()}`;
  if (usage.rows.length === 0) return `no usage ${window}\n`;
  const table = plainTable(['tenant', usage.groupBy, 'seconds', 'GPU-seconds', 'amount'], [2, 3, 4]);
  for (const row of usage.rows)
    table.push([row.tenant, row.key, row.seconds, row.gpuSeconds, formatMicroUsd(row.amountMicroUsd)]);
  const seconds = usage.rows.reduce((total, row) => total + row.seconds, 0);
  table.push(['total', '', seconds, usage.totalGpuSeconds, formatMicroUsd(usage.totalMicroUsd)]);
  return `usage ${window}, by ${usage.groupBy}\n${table.toString()}\n`;
}
