/**
 * `gpubroker policy get | set FILE | history`: the broker's versioned policy. Reading needs any token; setting and
 * the history need an operator token. A new version takes effect at the broker's next tick.
 */
import { readFileSync } from 'node:fs';
import Table from 'cli-table3';
import type { Command } from 'commander';
import { ValidationError } from '../../lib/errors.ts';
import type { PolicyVersion } from '../../sdk/index.ts';
import { brokerClient, type ClientFlags, printJson, talkTo, withClientOptions } from './client-options.ts';

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
        process.stdout.write(`${describeVersion(current)}\n${JSON.stringify(current.policy, null, 2)}\n`);
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
      const input = readPolicyFile(file);
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const version = await broker.policy.set(input);
        if (flags.json) return printJson(version);
        process.stdout.write(`${describeVersion(version)}\n${renderDiff(version)}`);
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
        process.stdout.write(renderHistory(versions));
      });
    });
}

/** The file's JSON object; an unreadable file, bad JSON or a non-object is a ValidationError naming the file. */
function readPolicyFile(file: string): Record<string, unknown> {
  let input: unknown;
  try {
    input = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ValidationError(file, `cannot read the policy: ${(error as Error).message}`);
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new ValidationError(file, 'a policy is a JSON object, e.g. { "spotMaxShare": 0.4 }');
  return input as Record<string, unknown>;
}

function describeVersion(v: PolicyVersion): string {
  if (v.version === 0) return 'policy version 0: the defaults (no version stored yet)';
  return `policy version ${v.version}, set by ${v.createdBy} at ${new Date(v.createdAtMs).toISOString()}`;
}

const shown = (value: unknown) => (value === undefined ? '(unset)' : JSON.stringify(value));

/** One line per changed field: `  spotMaxShare: 1 → 0.4`. */
function renderDiff(v: PolicyVersion): string {
  if (v.diff.length === 0) return '  no change from the version before\n';
  return v.diff.map((change) => `  ${change.path}: ${shown(change.from)} → ${shown(change.to)}\n`).join('');
}

function renderHistory(versions: readonly PolicyVersion[]): string {
  if (versions.length === 0) return 'no policy version stored yet: the defaults are in force\n';
  const table = new Table({
    head: ['version', 'who', 'when', 'changed'],
    style: { head: [], border: [], compact: true },
  });
  for (const v of versions)
    table.push([
      v.version,
      v.createdBy,
      new Date(v.createdAtMs).toISOString(),
      v.diff.map((change) => change.path).join(', ') || '(nothing)',
    ]);
  return `${table.toString()}\n`;
}
