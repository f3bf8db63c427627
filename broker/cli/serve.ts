/** `gpubroker serve`: the broker with its API, loop and embedded defaults (PGlite in --data-dir, simulated clouds). */
import type { Command } from 'commander';
import { parseIsolationMode, resolveIsolation } from '../../agent/executor/isolation.ts';
import { parseDurationMs, parseIntegerIn } from '../../lib/cli-args.ts';
import { ValidationError } from '../../lib/errors.ts';
import { loadSimScenario, quickStartScenario, simScenario } from '../../providers/sim/scenario.ts';
import type { BrokerCore } from '../broker.ts';
import type { BrokerPolicy } from '../policy.ts';
import { startServer } from '../server.ts';

/** GPUs of the quick start's warm buffer: one 8-GPU H100 instance. */
export const QUICK_START_BUFFER_GPUS = 8;

/**
 * Sets the quick start's warm buffer as the first policy version, where no policy was set yet (a policy set before
 * stays as it is), and ticks the loop at once so that it is bought now rather than at the next scheduled tick.
 */
async function holdQuickStartBuffer(broker: BrokerCore): Promise<void> {
  if ((await broker.policies.current()).version > 0) return;
  await broker.setPolicy(
    { buffer: { perGpu: { H100: { gpus: QUICK_START_BUFFER_GPUS, fraction: 0 } } } },
    'serve (quick start)',
  );
  void broker.loop.tick().catch((error: unknown) => broker.logger.error({ err: error }, 'tick failed'));
}

/** The warm buffer in words: `8 H100 GPUs`, `10 % of demand on top`, `none`. */
function describeBuffer(buffer: BrokerPolicy['buffer']): string {
  const say = (what: string, b: { gpus: number; fraction: number }) =>
    [
      ...(b.gpus > 0 ? [`${b.gpus} ${what} GPUs`] : []),
      ...(b.fraction > 0 ? [`${Math.round(b.fraction * 100)} % of ${what} demand`] : []),
    ].join(' + ');
  const parts = [
    ...Object.entries(buffer.perGpu).map(([gpu, b]) => say(gpu, b)),
    say('other', buffer.default),
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(', ') : 'none';
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'run the broker: HTTP API, control loop and providers (embedded PGlite and simulated clouds by default)',
    )
    .option('--port <port>', 'port on 127.0.0.1', '8787')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--data-dir <dir>', 'where PGlite and the operator token live', '.gpubroker')
    .option(
      '--providers <names>',
      'comma-separated: sim (simulated AWS, GCP, Azure), local (this machine), machines (your own, joined with `gpubroker agent`), aws, gcp, azure (real clouds, see providers/*/README.md), or a provider server URL (gpubroker clouds serve)',
      'sim',
    )
    .option(
      '--scenario <file>',
      'simulated clouds scenario (.json or .ts), or `realistic` (boots of minutes; default: quick boots of 5-15 s)',
    )
    .option('--meter-heartbeat <duration>', 'how often running usage is checkpointed (e.g. 5s, 500ms)', '5s')
    .option(
      '--public-url <url>',
      "this broker's URL as cloud instances reach it, for their agents (required with aws, gcp, azure; default: GPUBROKER_PUBLIC_URL)",
    )
    .option(
      '--no-local-agents',
      'no local agent host: simulated instances wait for agents started by hand (gpubroker agent --instance-id …)',
    )
    .option(
      '--isolation <mode>',
      'how the local agent host runs containers: auto (bubblewrap where the machine allows, else says why not), bubblewrap or none',
      'auto',
    )
    .option(
      '--agent-join-timeout <duration>',
      'a cloud instance whose agent has not joined this long after it runs is replaced',
      '10m',
    )
    .action(
      async (flags: {
        port: string;
        host: string;
        dataDir: string;
        providers: string;
        scenario?: string;
        meterHeartbeat: string;
        publicUrl?: string;
        agentJoinTimeout: string;
        localAgents: boolean;
        isolation: string;
      }) => {
        const port = parseIntegerIn('--port', flags.port, 0, 65_535);
        const meterHeartbeatMs = parseDurationMs('--meter-heartbeat', flags.meterHeartbeat);
        if (meterHeartbeatMs < 100 || meterHeartbeatMs > 3_600_000)
          throw new ValidationError('--meter-heartbeat', 'must be from 100ms to 1h');
        const agentJoinTimeoutMs = parseDurationMs('--agent-join-timeout', flags.agentJoinTimeout);
        if (agentJoinTimeoutMs < 10_000 || agentJoinTimeoutMs > 24 * 3_600_000)
          throw new ValidationError('--agent-join-timeout', 'must be from 10s to 24h');
        const publicUrl = flags.publicUrl ?? process.env.GPUBROKER_PUBLIC_URL;
        // No --scenario: new clouds boot in seconds (said on screen), clouds kept in the data directory keep their
        // scenario; `realistic` or a file: that scenario.
        const scenario =
          flags.scenario === undefined
            ? undefined
            : flags.scenario === 'realistic'
              ? simScenario()
              : await loadSimScenario(flags.scenario);
        const isolation = resolveIsolation(parseIsolationMode(flags.isolation));
        const databaseUrl = process.env.DATABASE_URL;
        const server = await startServer({
          port,
          host: flags.host,
          dataDir: flags.dataDir,
          providers: flags.providers
            .split(',')
            .map((p) => p.trim())
            .filter(Boolean),
          ...(databaseUrl ? { databaseUrl } : {}),
          ...(scenario ? { scenario } : { defaultScenario: quickStartScenario() }),
          meterHeartbeatMs,
          ...(publicUrl ? { publicUrl } : {}),
          agentJoinTimeoutMs,
          agentHost: flags.localAgents,
          agentIsolation: isolation.mode,
        });
        // The quick start (simulated clouds, no scenario) on a data directory with no policy yet: a warm buffer of
        // one 8-GPU H100 instance, set as the first policy version and bought at once, so that a first
        // `gpubroker run` (or lease) finds GPUs instead of waiting for a boot. `gpubroker policy` changes it.
        // Only the simulated clouds of this process (`sim`): a provider server (`--providers URL`) runs its own
        // scenario, and a real cloud's instances cost real money.
        const embeddedClouds = flags.providers.split(',').some((p) => p.trim() === 'sim');
        if (flags.scenario === undefined && !databaseUrl && embeddedClouds)
          await holdQuickStartBuffer(server.broker);
        const policy = await server.broker.policies.current();
        // Handlers first: whoever reads the banner may signal at once.
        const shutdown = async () => {
          await server.close();
          process.exit(0);
        };
        process.once('SIGINT', () => void shutdown());
        process.once('SIGTERM', () => void shutdown());
        const storage = databaseUrl ? 'PostgreSQL (DATABASE_URL)' : `PGlite in ${flags.dataDir}/pgdata`;
        process.stdout.write(
          [
            `gpubroker listening on ${server.url}`,
            `  storage: ${storage}; providers: ${[...server.providers.map((p) => p.vendor), ...(server.broker.machines ? ['machines (join one: gpubroker token create --join, then gpubroker agent --broker URL --token …)'] : [])].join(', ')}`,
            ...(!flags.providers.split(',').some((p) => p.trim() === 'sim')
              ? []
              : [
                  `  simulated clouds: ${flags.scenario === undefined ? 'new instances boot in 5–15 s (quick start; clouds kept in the data directory keep their scenario; --scenario realistic for the 1–5 min of real clouds)' : flags.scenario === 'realistic' ? 'realistic boot times (1–5 min)' : `scenario ${flags.scenario}`}`,
                ]),
            `  warm buffer: ${describeBuffer(policy.policy.buffer)}${policy.version > 0 ? ` (policy version ${policy.version}, set by ${policy.createdBy})` : ''}; gpubroker policy to change it`,
            `  agents: ${server.agentHostPid ? `simulated instances run their containers through a local agent host, ${isolation.summary}` : 'containers run on the machines whose agents joined'}`,
            `  operator token: ${server.operatorTokenFile} (export GPUBROKER_TOKEN=$(cat ${server.operatorTokenFile}))`,
            `  console: ${server.url}/ (log in with the operator token)`,
            `  OpenAPI: ${server.url}/openapi.json   metrics: ${server.url}/metrics`,
            '',
            '  import { Broker } from "gpubroker";',
            `  const broker = new Broker({ url: "${server.url}" });`,
            '  const lease = await broker.gpus.request({ gpu: "H100", count: 8, placement: "single-node" });',
            '  console.log(lease.allocations);',
            '  await lease.release();',
            '',
          ].join('\n'),
        );
      },
    );
}
