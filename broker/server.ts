/**
 * `gpubroker serve`: the broker on HTTP. Embedded by default: PGlite in the data directory and simulated clouds,
 * or PostgreSQL when `databaseUrl` is given. On first start it creates an operator token and writes it to
 * `<dataDir>/operator-token` (mode 600).
 */
import { lookup } from 'node:dns/promises';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { type AddressInfo, isIP } from 'node:net';
import { join } from 'node:path';
import { getRequestListener } from '@hono/node-server';
import { type Logger, pino } from 'pino';
import { type Clock, RealClock } from '../lib/clock.ts';
import { withDeadline } from '../lib/deadline.ts';
import { GpubrokerError, StartupError, ValidationError } from '../lib/errors.ts';
import { listening } from '../lib/listen.ts';
import { agentStartupScript } from '../providers/agent-bootstrap.ts';
import { LocalProvider } from '../providers/local/local-provider.ts';
import type { Provider } from '../providers/provider.ts';
import { connectRemoteProviders } from '../providers/remote/remote-provider.ts';
import type { SimScenario } from '../providers/sim/scenario.ts';
import { createSimClouds, SIM_CLOUDS_FILE } from '../providers/sim/sim-clouds.ts';
import { LocalAgentHost } from './agents/local-agent-host.ts';
import { createApp } from './api/app.ts';
import { answerMalformedRequests } from './api/malformed-requests.ts';
import { HttpProblem, problemFor } from './api/problem.ts';
import { BrokerCore } from './broker.ts';
import { checkDataDir } from './db/data-dir-check.ts';
import { type DataDirLock, lockDataDir } from './db/data-dir-lock.ts';
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
  /** Without `scenario`: the scenario of simulated clouds that start empty (clouds kept in the data dir keep theirs). */
  readonly defaultScenario?: SimScenario;
  readonly clock?: Clock;
  readonly seed?: number;
  /** Run the loop on its schedule (default true); tests tick by hand. */
  readonly schedule?: boolean;
  /** How often the meter checkpoints running usage (default 5,000 ms). */
  readonly meterHeartbeatMs?: number;
  /** How long a start-up step that waits on the outside world may take (default STARTUP_STEP_TIMEOUT_MS). */
  readonly startupStepTimeoutMs?: number;
  /**
   * Start the local agent host, the agent of every simulated instance (default true). Off, simulated instances
   * wait for agents started by hand (`gpubroker agent --instance-id …`), as cloud instances do.
   */
  readonly agentHost?: boolean;
  /** How the local agent host runs containers (default none; `gpubroker serve` resolves `--isolation`). */
  readonly agentIsolation?: 'bubblewrap' | 'none';
  /** How often agents heartbeat (default 2,000 ms; lost after three missed). */
  readonly agentHeartbeatMs?: number;
  /**
   * The broker's URL as cloud instances reach it (`--public-url`, GPUBROKER_PUBLIC_URL): the agents they start at
   * boot dial it. Required with aws, gcp or azure.
   */
  readonly publicUrl?: string;
  /** How long a cloud instance may run before its agent joins; then it is replaced (default 10 minutes). */
  readonly agentJoinTimeoutMs?: number;
}

export interface RunningServer {
  readonly url: string;
  readonly broker: BrokerCore;
  /** The operator token, when this server created or found one in the data directory. */
  readonly operatorToken: string | undefined;
  readonly operatorTokenFile: string | undefined;
  readonly providers: readonly Provider[];
  /** The local agent host process (the agent of simulated instances), when one runs. */
  readonly agentHostPid: number | undefined;
  close(): Promise<void>;
}

export const PROVIDER_NAMES = ['sim', 'local', 'machines', 'aws', 'gcp', 'azure'] as const;

/**
 * The providers `names` asks for. With a data directory, the simulated clouds keep their state in
 * `<dataDir>/sim-clouds.json`, so that they outlive a crash of this process as real clouds would.
 */
export async function makeProviders(
  names: readonly string[],
  clock: Clock,
  scenario?: SimScenario,
  dataDir?: string,
  defaultScenario?: SimScenario,
  logger?: Logger,
): Promise<Provider[]> {
  const providers: Provider[] = [];
  for (const name of names) {
    providerKind(name);
    // Machines of your own join by running the agent; nothing to connect to (BrokerCoreOptions.machines).
    if (name === 'machines') continue;
    if (name === 'sim')
      providers.push(
        ...createSimClouds({
          clock,
          ...(scenario ? { scenario } : {}),
          ...(defaultScenario ? { defaultScenario } : {}),
          ...(dataDir ? { stateFile: join(dataDir, SIM_CLOUDS_FILE) } : {}),
        }),
      );
    else if (name === 'local') providers.push(await LocalProvider.create({ clock }));
    // The cloud SDKs load only when a cloud is asked for; options come from the environment (see each README).
    else if (name === 'aws') {
      const { createAwsProvider } = await import('../providers/aws/aws-provider.ts');
      const { awsOptionsFromEnv } = await import('../providers/aws/aws-env.ts');
      providers.push(
        await createAwsProvider({
          clock,
          ...awsOptionsFromEnv(process.env),
          log: logger?.child({ provider: 'aws' }),
        }),
      );
    } else if (name === 'azure') {
      const { createAzureProvider } = await import('../providers/azure/azure-provider.ts');
      const { azureOptionsFromEnv } = await import('../providers/azure/azure-options.ts');
      providers.push(
        await createAzureProvider({
          ...azureOptionsFromEnv(process.env),
          clock,
          log: logger?.child({ provider: 'azure' }),
        }),
      );
    } else if (name === 'gcp') {
      const { createGcpProvider } = await import('../providers/gcp/gcp-provider.ts');
      const { gcpOptionsFromEnv } = await import('../providers/gcp/gcp-config.ts');
      providers.push(
        await createGcpProvider({
          clock,
          ...gcpOptionsFromEnv(process.env),
          log: logger?.child({ provider: 'gcp' }),
        }),
      );
    } else providers.push(...(await connectRemoteProviders(name, clock)));
  }
  return providers;
}

/** A provider name as `--providers` takes it, or a ValidationError naming the setting. */
function providerKind(name: string): 'named' | 'url' {
  if ((PROVIDER_NAMES as readonly string[]).includes(name)) return 'named';
  if (/^https?:\/\/[^\s]+$/.test(name)) return 'url';
  throw new ValidationError(
    '--providers',
    `"${name}" is not one of ${PROVIDER_NAMES.join(', ')}, or the URL of a provider server`,
  );
}

/** How long a start-up step that waits on the outside world (DNS, a provider server) may take. */
export const STARTUP_STEP_TIMEOUT_MS = 8_000;

/**
 * The start-up sequence, in an order that leaves nothing behind when a step fails: validate the settings, lock
 * the data directory (before anything else touches it), refuse a damaged one, bind the port (a port in use fails
 * here, before any loop runs or cloud is called), connect the providers, open the database, start the broker.
 * Every failure is a StartupError naming the setting, and everything started before it is stopped again. While
 * starting, the port answers 503 problem+json.
 */
export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const clock = options.clock ?? new RealClock();
  const host = options.host ?? '127.0.0.1';
  const stepMs = options.startupStepTimeoutMs ?? STARTUP_STEP_TIMEOUT_MS;
  // One logger for the broker and the clouds' adapters (their price reads log at debug).
  const logger = pino({ level: process.env.GPUBROKER_LOG ?? 'silent' });
  const undo: (() => Promise<void> | void)[] = [];
  const unwind = async () => {
    for (const step of undo.reverse()) await Promise.resolve(step()).catch(() => undefined);
  };
  try {
    for (const name of options.providers ?? []) providerKind(name);
    const clouds = cloudNames(options.providers ?? []);
    if (clouds.length > 0) checkPublicUrl(options.publicUrl, clouds);
    await resolveHost(host, stepMs);
    let lock: DataDirLock | undefined;
    if (options.dataDir) {
      lock = lockDataDir(prepareDataDir(options.dataDir));
      undo.push(() => lock?.release());
      const report = checkDataDir(options.dataDir, { pglite: !options.databaseUrl });
      if (report.verdict === 'damaged')
        throw new StartupError(
          '--data-dir',
          `${options.dataDir} is damaged: ${report.problems[0]}; nothing was changed. Run \`gpubroker db check --data-dir ${options.dataDir}\`, restore it from a backup or move it away`,
        );
    }

    let ready: ((request: Request) => Response | Promise<Response>) | undefined;
    // Node's server, not `serve`: so that a request Hono's adapter cannot turn into a Request (a bad Host header)
    // is answered with problem+json too, and a request without Host (HTTP/1.0 style) is served, not refused bare.
    const server = createServer(
      { requireHostHeader: false },
      getRequestListener((request) => (ready ? ready(request) : starting()), {
        hostname: host,
        errorHandler: (error) =>
          problemResponse(
            new HttpProblem(
              400,
              'Bad Request',
              `the request cannot be read: ${(error as Error).message}`,
              'request',
            ),
          ),
      }),
    );
    server.listen(options.port ?? 8787, host);
    await listening(server, host, options.port ?? 8787);
    let serverClosed: Promise<void> | undefined;
    // Once: the first call stops new connections; the promise settles when the last one (an agent's WebSocket
    // included) has ended.
    const closeServer = () =>
      (serverClosed ??= new Promise<void>((resolve) => server.close(() => resolve())));
    undo.push(closeServer);
    answerMalformedRequests(server);

    const providers = await withDeadline(
      makeProviders(
        options.providers ?? ['sim'],
        clock,
        options.scenario,
        options.dataDir,
        options.defaultScenario,
        logger,
      ),
      stepMs,
      () => new StartupError('--providers', `no answer within ${stepMs / 1000} s`),
    ).catch((error: unknown) => {
      if (error instanceof GpubrokerError) throw error;
      throw new StartupError('--providers', (error as Error).message, { cause: error });
    });
    undo.push(async () => {
      for (const provider of providers) await provider.close();
    });
    const database = await openDatabase({
      ...(options.databaseUrl ? { url: options.databaseUrl } : {}),
      ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    }).catch((error: unknown) => {
      if (error instanceof GpubrokerError) throw error;
      const setting = options.databaseUrl ? 'DATABASE_URL' : '--data-dir';
      throw new StartupError(setting, `the database cannot be opened: ${(error as Error).message}`, {
        cause: error,
      });
    });
    undo.push(() => database.close());
    const broker = new BrokerCore({
      database,
      clock,
      logger,
      providers,
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      ...(options.meterHeartbeatMs !== undefined ? { meterHeartbeatMs: options.meterHeartbeatMs } : {}),
      ...(options.agentHeartbeatMs !== undefined ? { agentHeartbeatMs: options.agentHeartbeatMs } : {}),
      ...(clouds.length > 0 && options.publicUrl
        ? { agentBootstrap: { brokerUrl: options.publicUrl, vendors: clouds } }
        : {}),
      ...(options.agentJoinTimeoutMs !== undefined ? { agentJoinTimeoutMs: options.agentJoinTimeoutMs } : {}),
      machines: (options.providers ?? []).includes('machines'),
      ...(options.dataDir ? { stateDir: options.dataDir } : {}),
    });
    // Agents may dial in as soon as the broker exists (before, the port answers 503 and they retry).
    broker.agents?.attach(server);
    let agentHost: LocalAgentHost | undefined;
    // Stopped after the broker (undo runs backwards), which stops its containers through the agents first.
    undo.push(() => agentHost?.close());
    await broker.start({ schedule: options.schedule !== false });
    undo.push(() => broker.close());

    let operatorToken: string | undefined;
    let operatorTokenFile: string | undefined;
    if (options.dataDir) {
      operatorTokenFile = join(options.dataDir, 'operator-token');
      operatorToken = await operatorTokenIn(operatorTokenFile, () =>
        broker.tokens.create('operator', 'operator'),
      );
    }

    const url = `http://${host.includes(':') ? `[${host}]` : host}:${(server.address() as AddressInfo).port}`;
    await broker.advertise(url);
    ready = createApp(broker).fetch;
    // Simulated instances boot no machine that could run an agent: one agent host process beside the broker is
    // their agent (the clouds' own instances start theirs from the start-up script).
    const simulated = simulatedVendors(options.providers ?? ['sim'], providers);
    if (broker.agents && simulated.size > 0 && options.agentHost !== false) {
      agentHost = new LocalAgentHost({
        brokerUrl: url,
        fleet: broker.fleet,
        registry: broker.agentRegistry,
        vendors: simulated,
        stateDir: broker.stateDir,
        logger: broker.logger,
        ...(options.agentIsolation ? { isolation: options.agentIsolation } : {}),
      });
      await agentHost.start();
    }
    return {
      url,
      broker,
      operatorToken,
      operatorTokenFile,
      providers,
      agentHostPid: agentHost?.pid,
      async close() {
        // No new requests first; then the broker (which closes the agents' connections), its providers and
        // database, and the lock last.
        void closeServer();
        await unwind();
      },
    };
  } catch (error) {
    await unwind();
    throw error;
  }
}

/** Vendors of the providers that are simulated here or by a provider server (not a real cloud's SDK). */
function simulatedVendors(names: readonly string[], providers: readonly Provider[]): Set<string> {
  const real = new Set<string>(cloudNames(names));
  return new Set(providers.map((p) => p.vendor).filter((vendor) => !real.has(vendor)));
}

/** The real clouds among `--providers` (their instances start their own agent, from a start-up script). */
function cloudNames(names: readonly string[]): string[] {
  return names.filter((name) => name === 'aws' || name === 'gcp' || name === 'azure');
}

/** A real cloud's instances dial the broker at its public URL: it must be given, and fit a start-up script. */
function checkPublicUrl(url: string | undefined, clouds: readonly string[]): void {
  const setting = '--public-url';
  if (!url)
    throw new StartupError(
      setting,
      `required with ${clouds.join(', ')}: the URL at which its instances' agents reach this broker (or set GPUBROKER_PUBLIC_URL)`,
    );
  try {
    agentStartupScript('aws', { brokerUrl: url, joinToken: 'gpj_check', version: '0.0.0' });
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    throw new StartupError(setting, error.message.slice(error.field.length + 2), { cause: error });
  }
}

/** The data directory exists and is a directory (created when absent). */
function prepareDataDir(dir: string): string {
  const stat = statOrUndefined(dir);
  if (stat && !stat.isDirectory()) throw new StartupError('--data-dir', `${dir} is not a directory`);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new StartupError('--data-dir', `${dir} cannot be created (${(error as Error).message})`, {
      cause: error,
    });
  }
  return dir;
}

/** An unresolvable --host fails in seconds instead of waiting on the resolver's retries. */
async function resolveHost(host: string, stepMs: number): Promise<void> {
  if (isIP(host) !== 0) return;
  await withDeadline(
    lookup(host),
    stepMs,
    () => new StartupError('--host', `"${host}" did not resolve within ${stepMs / 1000} s`),
  ).catch((error: unknown) => {
    if (error instanceof StartupError) throw error;
    throw new StartupError('--host', `"${host}" does not resolve to an address of this machine`, {
      cause: error,
    });
  });
}

/** The operator token in the data directory, created on first start (mode 600). */
async function operatorTokenIn(file: string, create: () => Promise<{ token: string }>): Promise<string> {
  const stat = statOrUndefined(file);
  if (stat && !stat.isFile()) throw new StartupError('--data-dir', `${file} is not a file`);
  if (stat) {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length === 0) throw new StartupError('--data-dir', `${file} is empty`);
    return token;
  }
  const { token } = await create();
  // Written whole or not at all: a crash mid-write must not leave a truncated token.
  const partial = `${file}.partial`;
  writeFileSync(partial, `${token}\n`, { mode: 0o600 });
  renameSync(partial, file);
  return token;
}

function statOrUndefined(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function starting(): Response {
  const response = problemResponse(
    new HttpProblem(503, 'Starting', 'the broker is starting; retry in a moment'),
  );
  response.headers.set('retry-after', '1');
  return response;
}

function problemResponse(problem: HttpProblem): Response {
  return new Response(JSON.stringify(problemFor(problem)), {
    status: problem.status,
    headers: { 'content-type': 'application/problem+json' },
  });
}
