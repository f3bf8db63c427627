/** `gpubroker token create`: a new API token for a tenant (operator token needed), printed once. */
import type { Command } from 'commander';
import { parseIntegerIn } from '../../lib/cli-args.ts';
import { brokerClient, type ClientFlags, printJson, talkTo, withClientOptions } from './client-options.ts';

interface TokenCreateFlags extends ClientFlags {
  tenant: string;
  operator?: boolean;
  gpuQuota?: string;
  json?: boolean;
}

export function registerTokenCommand(program: Command): void {
  const token = program.command('token').description('API tokens of tenants and operators');
  withClientOptions(
    token
      .command('create')
      .description('create a token for a tenant (needs an operator token); stdout is the token alone'),
  )
    .requiredOption(
      '--tenant <name>',
      'tenant name (created if new): lower-case letters, digits, ".", "_", "-"',
    )
    .option('--operator', 'an operator token (manages policy and tokens, sees every lease)')
    .option('--gpu-quota <gpus>', 'most GPUs the tenant may hold at once')
    .option('--json', 'print the answer as JSON ({ token, tenant, role })')
    .action(async (flags: TokenCreateFlags) => {
      const gpuQuota =
        flags.gpuQuota === undefined
          ? undefined
          : parseIntegerIn('--gpu-quota', flags.gpuQuota, 0, 1_000_000);
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const created = await broker.tokens.create({
          tenant: flags.tenant,
          operator: flags.operator === true,
          ...(gpuQuota !== undefined ? { gpuQuota } : {}),
        });
        if (flags.json) return printJson(created);
        process.stdout.write(`${created.token}\n`);
        process.stderr.write(
          `${created.role} token for tenant ${created.tenant}: it is shown only now (export GPUBROKER_TOKEN=…)\n`,
        );
      });
    });
}
