/**
 * `gpubroker agent …`: join this machine to a broker (`agent`), be the agent of the embedded default's simulated
 * instances (`agent host`, started by the broker itself), and the operator's `agent list` / `agent revoke`.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import type { Command } from 'commander';
import pino from 'pino';
import { parsePositive } from '../lib/cli-args.ts';
import { ValidationError } from '../lib/errors.ts';
import { type ClientFlags, withClientOptions } from '../sdk/cli/client-flags.ts';
import { Agent } from './agent.ts';
import { BundleCache } from './bundle-cache.ts';
import { openIsolation, parseIsolationMode } from './executor/isolation.ts';
import { LocalExecutor } from './executor/local-executor.ts';
import { nvidiaGpuSource, parseVirtualGpus, virtualGpuSource } from './gpus.ts';
import { AgentHost } from './host.ts';
import { LayerCache } from './layer-cache.ts';

interface AgentFlags {
  broker: string;
  token?: string;
  tokenFile?: string;
  instanceId?: string;
  instanceIdFrom?: string;
  virtualGpus?: string;
  labels?: string;
  usdPerHour?: string;
  stateDir: string;
  isolation: string;
}

export function registerAgentCommand(program: Command): void {
  const agent = program
    .command('agent')
    .description('join this machine to a broker: run the containers it places here (see `agent --help`)')
    .option('--broker <url>', 'the broker, e.g. http://broker.example.com:8787 (default: GPUBROKER_URL)')
    .option('--token <token>', 'a join token (`gpubroker token create --join`), or GPUBROKER_JOIN_TOKEN')
    .option('--token-file <file>', 'read the join token from this file (keeps it off the command line)')
    .option('--instance-id <id>', "the provider's id of this instance (a cloud instance the broker bought)")
    .option(
      '--instance-id-from <cloud>',
      "read the instance id from the cloud's metadata service: aws, gcp or azure",
    )
    .option('--virtual-gpus <spec>', 'pretend to have these GPUs instead of asking nvidia-smi, e.g. 4xH100')
    .option('--labels <pairs>', 'labels of a machine of your own, k=v,k=v (region=… is its region group)')
    .option('--usd-per-hour <usd>', 'what a machine of your own costs per hour (for cost reports)')
    .option('--state-dir <dir>', 'credential, bundle cache and container directories', '.gpubroker-agent')
    .option(
      '--isolation <mode>',
      'bubblewrap: each container in its own sandbox (needs bubblewrap and root); none: plain processes',
      'bubblewrap',
    )
    .action(async (flags: AgentFlags) => runAgent(flags));

  // Its own command (hidden): as a subcommand of `agent`, the parent's --broker would take its flag.
  program
    .command('agent-host', { hidden: true })
    .description('(started by `gpubroker serve`) the agents of simulated instances, ordered on stdin')
    .requiredOption('--broker <url>', 'the broker')
    .requiredOption('--state-dir <dir>', 'containers and bundle cache')
    .option('--isolation <mode>', 'bubblewrap, none or auto', 'auto')
    .action(async (flags: { broker: string; stateDir: string; isolation: string }) => {
      const token = process.env.GPUBROKER_JOIN_TOKEN;
      if (!token) throw new ValidationError('GPUBROKER_JOIN_TOKEN', 'the agent host needs a join token');
      const isolation = await openIsolation(parseIsolationMode(flags.isolation), flags.stateDir);
      const host = new AgentHost({
        brokerUrl: brokerUrlOf(flags.broker),
        token,
        stateDir: resolve(flags.stateDir),
        ...(isolation.sandbox ? { sandbox: isolation.sandbox } : {}),
        logger: pino({ level: process.env.GPUBROKER_LOG ?? 'silent' }),
      });
      process.on('SIGTERM', () => void host.close().then(() => process.exit(0)));
      await host.serve(process.stdin);
    });

  withClientOptions(agent.command('list').description('agents that joined, and their connections (operator)'))
    .option('--json', 'print JSON')
    .action(async (flags: ClientFlags & { json?: boolean }) => {
      const { brokerClient, printJson, talkTo } = await clientOptions();
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const { agents } = await broker.call<{ agents: AgentRow[] }>('GET', '/v1/agents');
        if (flags.json) return printJson(agents);
        for (const a of agents) {
          const state = a.revokedAt
            ? 'revoked'
            : a.connection
              ? a.connection.placeable
                ? 'ready'
                : `connected, not placeable${a.connection.health.ok ? '' : `: ${a.connection.health.problems.join('; ')}`}`
              : 'disconnected';
          const gpus = a.connection ? `${a.connection.gpus.length}x${a.connection.gpus[0]?.name ?? '-'}` : '';
          process.stdout.write(`${a.agentId}\t${a.instanceId}\t${a.hostname}\t${gpus}\t${state}\n`);
        }
      });
    });

  withClientOptions(
    agent
      .command('revoke <agentId>')
      .description("revoke an agent's credential and disconnect it (operator)"),
  ).action(async (agentId: string, flags: ClientFlags) => {
    const { brokerClient, talkTo } = await clientOptions();
    const broker = brokerClient(flags);
    await talkTo(broker, async () => {
      await broker.call('DELETE', `/v1/agents/${encodeURIComponent(agentId)}`);
      process.stderr.write(`agent ${agentId} revoked and disconnected\n`);
    });
  });
}

/** The SDK's client, loaded by the commands that use it: an agent process never does (its idle memory). */
const clientOptions = () => import('../sdk/cli/client-options.ts');

interface AgentRow {
  agentId: string;
  instanceId: string;
  hostname: string;
  revokedAt: string | null;
  connection: {
    gpus: { name: string }[];
    health: { ok: boolean; problems: string[] };
    placeable: boolean;
  } | null;
}

function brokerUrlOf(text: string | undefined): string {
  const url = text ?? process.env.GPUBROKER_URL;
  if (!url) throw new ValidationError('--broker', 'name the broker, e.g. --broker http://127.0.0.1:8787');
  if (!/^https?:\/\/[^\s]+$/.test(url))
    throw new ValidationError('--broker', `"${url}" is not an http(s) URL`);
  return url.replace(/\/$/, '');
}

function parseLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!text) return labels;
  for (const pair of text.split(',')) {
    const match = /^([A-Za-z0-9][A-Za-z0-9._/-]{0,62})=([^,]{0,200})$/.exec(pair.trim());
    if (!match) throw new ValidationError('--labels', `"${pair}" is not key=value`);
    labels[match[1] as string] = match[2] as string;
  }
  return labels;
}

async function runAgent(flags: AgentFlags): Promise<void> {
  const brokerUrl = brokerUrlOf(flags.broker);
  let token = flags.token ?? process.env.GPUBROKER_JOIN_TOKEN;
  if (flags.tokenFile) {
    try {
      token = readFileSync(flags.tokenFile, 'utf8').trim();
    } catch (error) {
      throw new ValidationError(
        '--token-file',
        `cannot read ${flags.tokenFile}: ${(error as Error).message}`,
      );
    }
  }
  const stateDir = resolve(flags.stateDir);
  const credentialFile = join(stateDir, 'credential');
  let hasCredential = false;
  try {
    hasCredential = readFileSync(credentialFile, 'utf8').trim() !== '';
  } catch {
    hasCredential = false;
  }
  if (!token && !hasCredential)
    throw new ValidationError('--token', 'give a join token (--token, --token-file or GPUBROKER_JOIN_TOKEN)');
  if (flags.instanceId && flags.instanceIdFrom)
    throw new ValidationError('--instance-id', 'give --instance-id or --instance-id-from, not both');
  let instanceId = flags.instanceId;
  if (flags.instanceIdFrom) {
    const vendor = flags.instanceIdFrom;
    if (vendor !== 'aws' && vendor !== 'gcp' && vendor !== 'azure')
      throw new ValidationError('--instance-id-from', `"${vendor}" is not aws, gcp or azure`);
    const { instanceIdentity } = await import('./instance-identity.ts');
    instanceId = await instanceIdentity(vendor);
  }
  const usdPerHour =
    flags.usdPerHour === undefined ? undefined : parsePositive('--usd-per-hour', flags.usdPerHour, 10_000);
  const gpus = flags.virtualGpus ? virtualGpuSource(parseVirtualGpus(flags.virtualGpus)) : nvidiaGpuSource();
  // Before anything joins: a machine that cannot isolate says so now, not when the first container starts.
  const isolation = await openIsolation(parseIsolationMode(flags.isolation), stateDir);
  const logger = pino({ level: process.env.GPUBROKER_LOG ?? 'info' });
  if (isolation.leftovers)
    logger.warn(
      { containers: isolation.leftovers },
      'ended the containers a previous run of this agent left running',
    );
  const agent = new Agent({
    brokerUrl,
    token: token ?? '',
    credentialFile,
    ...(instanceId ? { instanceId } : {}),
    gpus,
    labels: parseLabels(flags.labels),
    ...(usdPerHour !== undefined ? { usdPerHour } : {}),
    executor: new LocalExecutor({
      workRoot: join(stateDir, 'containers'),
      ...(isolation.sandbox ? { sandbox: isolation.sandbox } : {}),
    }),
    bundles: new BundleCache(join(stateDir, 'bundles')),
    layers: new LayerCache(join(stateDir, 'layers')),
    ...(isolation.sandbox ? { sandbox: isolation.sandbox } : {}),
    execRoot: join(stateDir, 'execs'),
    logger,
    onFatal: (message) => {
      process.stderr.write(`gpubroker: ${message}\n`);
      process.exit(1);
    },
    // Idle, the agent ran without V8's optimizing compiler (bin/gpubroker.js: its memory); with work, calls pass
    // through it by the thousand and it is worth its megabytes (measured: agent CPU per input of a map).
    onFirstContainer: () => setFlagsFromString('--opt'),
  });
  const stop = () => void agent.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await agent.start();
  const { agentId, instanceId: joinedAs } = await agent.joined;
  process.stderr.write(
    `gpubroker agent ${agentId} joined ${brokerUrl} as ${joinedAs}\n  containers: ${isolation.summary}\n`,
  );
  // Runs until stopped: the connection keeps the process alive.
  await new Promise<never>(() => undefined);
}
