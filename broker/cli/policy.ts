/**
 * `gpubroker policy get | set FILE | history`: the broker's versioned policy. Reading needs any token; setting and
 * the history need an operator token. A new version takes effect at the broker's next tick.
 */
import type { Command } from 'commander';
import { type ClientFlags, withClientOptions } from '../../sdk/cli/client-flags.ts';
import { brokerClient, printJson, talkTo } from '../../sdk/cli/client-options.ts';
import { describeVersion, readJsonObjectFile, renderDiff, renderHistory } from './versions.ts';

const DEFAULTS = 'the defaults (no version stored yet)';

interface PolicyFlags extends ClientFlags {
  json?: boolean;
}

export function registerPolicyCommand(program: Command): void {
  const policy = program
    .command('policy')
    .description('the broker policy: planning policy, schedule, forecast (versioned, with who and when)');

  withClientOptions(policy.command('get').description('print the policy in force with its version'))
    .option('--json', 'print the answer as JSON ({ version, policy, createdAtMs, createdBy, diff })')
    .action(async (flags: PolicyFlags) => {
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const current = await broker.policy.get();
        if (flags.json) return printJson(current);
        process.stdout.write(
          `${describeVersion('policy', current, DEFAULTS)}\n${JSON.stringify(current.policy, null, 2)}\n`,
        );
      });
    });

  withClientOptions(
    policy
      .command('set')
      .description(
        'set a new policy version from a JSON file (operator); fields left out take their defaults',
      )
      .argument('<file>', 'policy JSON, e.g. { "spotMaxShare": 0.4, "budgetUsdPerHour": 900 }'),
  )
    .option('--json', 'print the new version as JSON')
    .action(async (file: string, flags: PolicyFlags) => {
      const input = readJsonObjectFile(file, 'the policy', '{ "spotMaxShare": 0.4 }');
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const version = await broker.policy.set(input);
        if (flags.json) return printJson(version);
        process.stdout.write(`${describeVersion('policy', version, DEFAULTS)}\n${renderDiff(version)}`);
      });
    });

  withClientOptions(
    policy.command('history').description('every stored policy version, newest first (operator)'),
  )
    .option('--json', 'print the answer as JSON ({ versions })')
    .action(async (flags: PolicyFlags) => {
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const versions = await broker.policy.history();
        if (flags.json) return printJson({ versions });
        process.stdout.write(renderHistory('policy', versions));
      });
    });
}
