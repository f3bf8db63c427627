/** `gpubroker token create`: a new API token for a tenant (operator token needed), printed once. */
import type { Command } from 'commander';
import { parseDurationMs, parseIntegerIn } from '../../lib/cli-args.ts';
import { ValidationError } from '../../lib/errors.ts';
import { type ClientFlags, withClientOptions } from '../../sdk/cli/client-flags.ts';
import { brokerClient, printJson, talkTo } from '../../sdk/cli/client-options.ts';

interface TokenCreateFlags extends ClientFlags {
  tenant?: string;
  join?: boolean;
  ttl?: string;
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
    .option('--tenant <name>', 'tenant name (created if new): lower-case letters, digits, ".", "_", "-"')
    .option('--join', 'a join token: it registers agents (gpubroker agent) and does nothing else')
    .option('--ttl <duration>', 'how long a join token may be used, e.g. 1h (default: until revoked)')
    .option('--operator', 'an operator token (manages policy and tokens, sees every lease)')
    .option('--gpu-quota <gpus>', 'most GPUs the tenant may hold at once')
    .option('--json', 'print the answer as JSON ({ token, tenant, role })')
    .action(async (flags: TokenCreateFlags) => {
      if (flags.join) return createJoinToken(flags);
      if (!flags.tenant)
        throw new ValidationError('--tenant', 'name the tenant (or give --join for a join token)');
      const tenant = flags.tenant;
      if (flags.ttl !== undefined) throw new ValidationError('--ttl', 'only join tokens expire (add --join)');
      const gpuQuota =
        flags.gpuQuota === undefined
          ? undefined
          : parseIntegerIn('--gpu-quota', flags.gpuQuota, 0, 1_000_000);
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const created = await broker.tokens.create({
          tenant,
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

async function createJoinToken(flags: TokenCreateFlags): Promise<void> {
  if (flags.tenant !== undefined || flags.operator || flags.gpuQuota !== undefined)
    throw new ValidationError(
      '--join',
      'a join token belongs to no tenant: leave out --tenant, --operator, --gpu-quota',
    );
  const ttlMs = flags.ttl === undefined ? undefined : parseDurationMs('--ttl', flags.ttl);
  const broker = brokerClient(flags);
  await talkTo(broker, async () => {
    const created = await broker.call<{ token: string; id: string; expiresAt: string | null }>(
      'POST',
      '/v1/tokens/join',
      ttlMs === undefined ? {} : { ttlMs },
    );
    if (flags.json) return printJson(created);
    process.stdout.write(`${created.token}\n`);
    process.stderr.write(
      `join token ${created.id}${created.expiresAt ? `, valid until ${created.expiresAt}` : ''}: it is shown only now; on the machine: gpubroker agent --broker ${broker.url} --token-file FILE\n`,
    );
  });
}
