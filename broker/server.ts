/**
 * `gpubroker serve`: the broker on HTTP. Embedded by default: PGlite in the data directory and simulated clouds,
 * or PostgreSQL when `databaseUrl` is given. On first start it creates an operator token and writes it to
 * `<dataDir>/operator-token` (mode 600).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { type Clock, RealClock } from '../lib/clock.ts';
import { ValidationError } from '../lib/errors.ts';
import { LocalProvider } from '../providers/local/local-provider.ts';
import type { Provider } from '../providers/provider.ts';
import { connectRemoteProviders } from '../providers/remote/remote-provider.ts';
import type { SimScenario } from '../providers/sim/scenario.ts';
import { createSimClouds } from '../providers/sim/sim-clouds.ts';
import { createApp } from './api/app.ts';
import { Broker } from './broker.ts';
import { openDatabase } from './db/open-database.ts';

export interface ServerOptions {
  readonly port?: number;
  readonly host?: string;
  /** PGlite's directory and the operator token's; omitted with no `databaseUrl`: an in-memory database. */
  readonly dataDir?: string;
  readonly databaseUrl?: string;
  /**
   * Which providers to buy from: `sim` (simulated AWS, GCP, Azure, in this process), `local` (this machine), or
   * the URL of a provider server (`gpubroker clouds serve`).
   */
  readonly providers?: readonly string[];
  readonly scenario?: SimScenario;
  readonly clock?: Clock;
  readonly seed?: number;
  /** Run the loop on its schedule (default true); tests tick by hand. */
  readonly schedule?: boolean;
  /** How often the meter checkpoints running usage (default 5,000 ms). */
  readonly meterHeartbeatMs?: number;
}

export interface RunningServer {
  readonly url: string;
  readonly broker: Broker;
  /** The operator token, when this server created or found one in the data directory. */
  readonly operatorToken: string | undefined;
  readonly operatorTokenFile: string | undefined;
  readonly providers: readonly Provider[];
  close(): Promise<void>;
}

export const PROVIDER_NAMES = ['sim', 'local', 'aws', 'gcp', 'azure'] as const;

export async function makeProviders(
  names: readonly string[],
  clock: Clock,
  scenario?: SimScenario,
): Promise<Provider[]> {
  const providers: Provider[] = [];
  for (const name of names) {
    if (name === 'sim') providers.push(...createSimClouds({ clock, ...(scenario ? { scenario } : {}) }));
    else if (name === 'local') providers.push(await LocalProvider.create({ clock }));
    // The cloud SDKs load only when a cloud is asked for; options come from the environment (see each README).
    else if (name === 'aws') {
      const { createAwsProvider } = await import('../providers/aws/aws-provider.ts');
      const { awsOptionsFromEnv } = await import('../providers/aws/aws-env.ts');
      providers.push(await createAwsProvider({ clock, ...awsOptionsFromEnv(process.env) }));
    } else if (name === 'azure') {
      const { createAzureProvider } = await import('../providers/azure/azure-provider.ts');
      const { azureOptionsFromEnv } = await import('../providers/azure/azure-options.ts');
      providers.push(await createAzureProvider({ ...azureOptionsFromEnv(process.env), clock }));
    } else if (name === 'gcp') {
      const { createGcpProvider } = await import('../providers/gcp/gcp-provider.ts');
      const { gcpOptionsFromEnv } = await import('../providers/gcp/gcp-config.ts');
      providers.push(await createGcpProvider({ clock, ...gcpOptionsFromEnv(process.env) }));
    } else if (/^https?:\/\//.test(name)) providers.push(...(await connectRemoteProviders(name, clock)));
    else
      throw new ValidationError(
        '--providers',
        `"${name}" is not one of ${PROVIDER_NAMES.join(', ')}, or the URL of a provider server`,
      );
  }
  return providers;
}

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const clock = options.clock ?? new RealClock();
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  // Bad provider names fail before anything is opened or written.
  const providers = await makeProviders(options.providers ?? ['sim'], clock, options.scenario);
  const database = await openDatabase({
    ...(options.databaseUrl ? { url: options.databaseUrl } : {}),
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
  });
  const broker = new Broker({
    database,
    clock,
    providers,
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(options.meterHeartbeatMs !== undefined ? { meterHeartbeatMs: options.meterHeartbeatMs } : {}),
    ...(options.dataDir ? { stateDir: options.dataDir } : {}),
  });
  await broker.start({ schedule: options.schedule !== false });

  let operatorToken: string | undefined;
  let operatorTokenFile: string | undefined;
  if (options.dataDir) {
    operatorTokenFile = join(options.dataDir, 'operator-token');
    if (existsSync(operatorTokenFile)) operatorToken = readFileSync(operatorTokenFile, 'utf8').trim();
    else {
      operatorToken = (await broker.tokens.create('operator', 'operator')).token;
      writeFileSync(operatorTokenFile, `${operatorToken}\n`, { mode: 0o600 });
    }
  }

  const app = createApp(broker);
  const server = serve({
    fetch: app.fetch,
    port: options.port ?? 8787,
    hostname: options.host ?? '127.0.0.1',
  });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;
  await broker.advertise(url);
  return {
    url,
    broker,
    operatorToken,
    operatorTokenFile,
    providers,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await broker.close();
      for (const provider of providers) await provider.close();
      await database.close();
    },
  };
}
