/**
 * `gpubroker tenant limits NAME [--gpu-quota N|none] [--spend-per-hour USD|none] [--spend-per-month USD|none]
 * [--on-limit continue|stop]` (operator): changes what is given and prints the limits in force; with no flag it
 * only prints them.
 */
import type { Command } from 'commander';
import { parseIntegerIn, parsePositive } from '../../lib/cli-args.ts';
import { usdToMicros } from '../../lib/money.ts';
import { type ClientFlags, withClientOptions } from '../../sdk/cli/client-flags.ts';
import { brokerClient, parseChoice, printJson, talkTo } from '../../sdk/cli/client-options.ts';
import type { TenantLimits, TenantLimitsInput } from '../../sdk/index.ts';
import { formatMicroUsd } from './billing-format.ts';

const ON_LIMIT = ['continue', 'stop'] as const;
/** The API's largest spend limit, in USD. */
const MAX_USD = 1e9;

interface LimitsFlags extends ClientFlags {
  gpuQuota?: string;
  spendPerHour?: string;
  spendPerMonth?: string;
  onLimit?: string;
  json?: boolean;
}

export function registerTenantCommand(program: Command): void {
  const tenant = program.command('tenant').description('tenants: quotas and spend limits (operator)');
  withClientOptions(
    tenant
      .command('limits')
      .description('set a tenant’s GPU quota and spend limits (operator); with no flag, print them')
      .argument('<name>', 'the tenant'),
  )
    .option('--gpu-quota <gpus>', 'most GPUs held at once, or none')
    .option('--spend-per-hour <usd>', 'most billed in any hour, or none')
    .option('--spend-per-month <usd>', 'most billed in a calendar month (UTC), or none')
    .option(
      '--on-limit <what>',
      'continue (only new leases are refused) | stop (running leases are released too)',
    )
    .option('--json', 'print the limits in force as JSON')
    .action(async (name: string, flags: LimitsFlags) => {
      const limits = limitsFromFlags(flags);
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const inForce = await broker.tenants.setLimits(name, limits);
        if (flags.json) return printJson(inForce);
        process.stdout.write(renderLimits(name, inForce));
      });
    });
}

/** The API request for the flags; a bad value is a ValidationError naming its flag. */
function limitsFromFlags(flags: LimitsFlags): TenantLimitsInput {
  const orNone = <T>(text: string | undefined, parse: (text: string) => T) =>
    text === undefined ? undefined : text.trim() === 'none' ? null : parse(text);
  const gpuQuota = orNone(flags.gpuQuota, (t) => parseIntegerIn('--gpu-quota', t, 0, 1_000_000));
  const perHour = orNone(flags.spendPerHour, (t) => parsePositive('--spend-per-hour', t, MAX_USD));
  const perMonth = orNone(flags.spendPerMonth, (t) => parsePositive('--spend-per-month', t, MAX_USD));
  return {
    ...(gpuQuota !== undefined ? { gpuQuota } : {}),
    ...(perHour !== undefined ? { spendLimitUsdPerHour: perHour } : {}),
    ...(perMonth !== undefined ? { spendLimitUsdPerMonth: perMonth } : {}),
    ...(flags.onLimit !== undefined
      ? { onSpendLimit: parseChoice('--on-limit', flags.onLimit, ON_LIMIT) }
      : {}),
  };
}

function renderLimits(name: string, limits: TenantLimits): string {
  const usd = (value: number | null) => (value === null ? 'none' : formatMicroUsd(usdToMicros(value)));
  const atLimit =
    limits.onSpendLimit === 'stop'
      ? 'stop (new leases refused, running ones released)'
      : 'continue (new leases refused, running ones continue)';
  return [
    `tenant ${name}`,
    `  GPU quota        ${limits.gpuQuota ?? 'none'}`,
    `  spend per hour   ${usd(limits.spendLimitUsdPerHour)}`,
    `  spend per month  ${usd(limits.spendLimitUsdPerMonth)}`,
    `  at a limit       ${atLimit}`,
    '',
  ].join('\n');
}
