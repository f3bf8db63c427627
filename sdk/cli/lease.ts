/**
 * `gpubroker lease request | list | release ID | exec ID -- CMD | shell ID`: a tenant's GPU leases, and commands or
 * an interactive shell on their machines. `request` waits until the lease is ready
 * (the SDK's `gpus.request`, progress on stderr, Ctrl-C releases it) unless `--no-wait`; a lease that fails or is
 * not ready within `--timeout` exits 1 with the reason.
 */
import { constants as osConstants } from 'node:os';
import Table from 'cli-table3';
import type { Command } from 'commander';
import { parseDurationMs, parseIntegerIn, parsePositive } from '../../lib/cli-args.ts';
import { ValidationError } from '../../lib/errors.ts';
import type { Broker, ExecResult, Lease, LeaseRequestInput } from '../index.ts';
import { type ClientFlags, withClientOptions } from './client-flags.ts';
import {
  brokerClient,
  EXIT_FAILURE,
  formatAge,
  parseChoice,
  parseList,
  printJson,
  talkTo,
} from './client-options.ts';

const PLACEMENTS = ['single-node', 'same-region', 'any'] as const;
const CAPACITY_TYPES = ['on-demand', 'spot', 'any'] as const;
/** How often a still-pending lease is reported on stderr. */
const PROGRESS_EVERY_MS = 5_000;

export interface LeaseRequestFlags {
  gpu: string;
  count: string;
  placement?: string;
  regions?: string;
  vendors?: string;
  capacityType?: string;
  maxUsdPerHour?: string;
  ttl?: string;
  idempotencyKey?: string;
}

interface RequestFlags extends LeaseRequestFlags, ClientFlags {
  wait: boolean;
  timeout?: string;
  json?: boolean;
}

interface OutputFlags extends ClientFlags {
  json?: boolean;
}

export function registerLeaseCommand(program: Command): void {
  const lease = program.command('lease').description('GPU leases: request, list, release, exec, shell');

  withClientOptions(
    lease
      .command('request')
      .description('request GPUs; waits until the lease is ready unless --no-wait (progress on stderr)'),
  )
    .requiredOption('--gpu <type>', 'GPU type as in the catalog, e.g. H100, A100-80GB, L4')
    .requiredOption('--count <gpus>', 'how many GPUs (1 to 1024)')
    .option('--placement <placement>', 'single-node | same-region | any (default any)')
    .option('--regions <names>', 'comma-separated regions to allow, e.g. us-east-1,us-west-2')
    .option('--vendors <names>', 'comma-separated vendors to allow, e.g. aws,gcp')
    .option('--capacity-type <type>', 'on-demand | spot | any (default any)')
    .option('--max-usd-per-hour <usd>', 'most the lease may cost per hour')
    .option('--ttl <seconds>', 'the broker ends the lease after this many seconds')
    .option(
      '--idempotency-key <key>',
      'a repeated request with this key answers the lease made the first time',
    )
    .option(
      '--no-wait',
      'print the lease as created (it may be pending) instead of waiting until it is ready',
    )
    .option('--timeout <duration>', 'give up (and release the lease) if not ready within this, e.g. 10m')
    .option('--json', 'print the lease as JSON')
    .action(async (flags: RequestFlags) => {
      const request = leaseRequestFromFlags(flags);
      const timeoutMs = flags.timeout === undefined ? undefined : parseDurationMs('--timeout', flags.timeout);
      if (timeoutMs !== undefined && !flags.wait)
        throw new ValidationError('--timeout', 'has no effect with --no-wait');
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const result = flags.wait
          ? await untilInterrupted((signal) =>
              broker.gpus.request(request, {
                signal,
                ...(timeoutMs !== undefined ? { timeoutMs } : {}),
                onProgress: progressReporter(),
              }),
            )
          : await broker.leases.create(request);
        if (flags.json) printJson(result);
        else process.stdout.write(describeLease(result));
        if (result.status === 'failed') process.exitCode = EXIT_FAILURE;
      });
    });

  withClientOptions(lease.command('list').description('your leases, oldest first (an operator sees all)'))
    .option('--json', 'print the answer as JSON ({ leases })')
    .action(async (flags: OutputFlags) => {
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const leases = await broker.leases.list();
        if (flags.json) return printJson({ leases });
        process.stdout.write(renderLeases(leases, Date.now()));
      });
    });

  withClientOptions(
    lease
      .command('release')
      .description('release a lease (again: no change)')
      .argument('<id>', 'lease id, as `lease list` shows it'),
  )
    .option('--json', 'print the released lease as JSON')
    .action(async (id: string, flags: OutputFlags) => {
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const released = await broker.leases.release(id);
        if (flags.json) return printJson(released);
        process.stdout.write(`lease ${released.id} ${released.status}\n`);
      });
    });

  withClientOptions(
    lease
      .command('exec')
      .description(
        "run a command on a lease's machine with CUDA_VISIBLE_DEVICES set to its GPUs; exits with its status",
      )
      .argument('<id>', 'lease id')
      .argument('<command...>', 'the command and its arguments (after --)'),
  )
    .option('--node <n>', "which of the lease's machines (default 0)")
    .action(async (id: string, command: string[], flags: ClientFlags & { node?: string }) => {
      const broker = brokerClient(flags);
      const node = flags.node === undefined ? 0 : parseIntegerIn('--node', flags.node, 0, 1023);
      await talkTo(broker, async () => {
        const controller = new AbortController();
        process.once('SIGINT', () => controller.abort());
        const result = await broker.leases.exec(id, command, { node, signal: controller.signal });
        exitWith(result);
      });
    });

  withClientOptions(
    lease
      .command('shell')
      .description(
        "an interactive shell on a lease's machine under a pseudo-terminal (bash, else sh, or the command after --), with CUDA_VISIBLE_DEVICES set to its GPUs; exits with its status",
      )
      .argument('<id>', 'lease id')
      .argument('[command...]', 'a command to run instead of the shell (after --)'),
  )
    .option('--node <n>', "which of the lease's machines (default 0)")
    .action(async (id: string, command: string[], flags: ClientFlags & { node?: string }) => {
      const broker = brokerClient(flags);
      const node = flags.node === undefined ? 0 : parseIntegerIn('--node', flags.node, 0, 1023);
      await talkTo(broker, async () => {
        const { result, interrupted } = await attachShell(broker, id, command, node);
        if (interrupted) process.exitCode = 128 + (signalNumber('SIGINT') ?? 2);
        else exitWith(result);
      });
    });
}

/** The remote command's own status; 128 + n for a signal, as shells report it; 1 when it could not run. */
function exitWith(result: ExecResult): void {
  if (result.error) process.stderr.write(`gpubroker: ${result.error}\n`);
  process.exitCode = result.code ?? (result.signal ? 128 + (signalNumber(result.signal) ?? 0) : 1);
}

function signalNumber(name: string): number | undefined {
  return (osConstants.signals as Record<string, number | undefined>)[name];
}

/**
 * `lease shell`: this terminal attached to a shell on the lease's machine. When stdin is a terminal it is put in
 * raw mode (every keystroke, Ctrl-C and Ctrl-D included, goes to the remote shell; restored when the shell ends,
 * fails or this process is interrupted) and the window's size follows it (SIGWINCH); piped input is sent as it is,
 * then end of file. SIGINT or SIGTERM to this process ends the remote shell.
 */
async function attachShell(
  broker: Broker,
  id: string,
  command: readonly string[],
  node: number,
): Promise<{ result: ExecResult; interrupted: boolean }> {
  const { stdin } = process;
  const window = [process.stdout, process.stderr].find((stream) => stream.isTTY);
  const size = () => ({ cols: window?.columns || 80, rows: window?.rows || 24 });
  const shell = await broker.leases.shell(id, {
    node,
    ...size(),
    ...(command.length > 0 ? { command } : {}),
    ...(process.env.TERM ? { env: { TERM: process.env.TERM } } : {}),
  });
  const raw = stdin.isTTY === true;
  const restore = () => {
    if (raw && stdin.isRaw) stdin.setRawMode(false);
  };
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
    restore();
    shell.close();
  };
  const onData = (chunk: Buffer) => shell.write(chunk);
  const onEnd = () => shell.end();
  const onResize = () => {
    const { cols, rows } = size();
    shell.resize(cols, rows);
  };
  if (raw) stdin.setRawMode(true);
  process.once('exit', restore);
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  window?.on('resize', onResize);
  stdin.on('data', onData);
  stdin.on('end', onEnd);
  try {
    return { result: await shell.exit, interrupted };
  } finally {
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    stdin.pause();
    window?.off('resize', onResize);
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    process.off('exit', restore);
    restore();
  }
}

/** The API request for the flags; a bad value is a ValidationError naming its flag. */
export function leaseRequestFromFlags(flags: LeaseRequestFlags): LeaseRequestInput {
  const gpu = flags.gpu.trim();
  if (gpu === '' || gpu.length > 32) throw new ValidationError('--gpu', `"${flags.gpu}" is not a GPU type`);
  return {
    gpu,
    count: parseIntegerIn('--count', flags.count, 1, 1024),
    ...(flags.placement !== undefined
      ? { placement: parseChoice('--placement', flags.placement, PLACEMENTS) }
      : {}),
    ...(flags.regions !== undefined ? { regions: parseList('--regions', flags.regions) } : {}),
    ...(flags.vendors !== undefined ? { vendors: parseList('--vendors', flags.vendors) } : {}),
    ...(flags.capacityType !== undefined
      ? { capacityType: parseChoice('--capacity-type', flags.capacityType, CAPACITY_TYPES) }
      : {}),
    ...(flags.maxUsdPerHour !== undefined
      ? { maxUsdPerHour: parsePositive('--max-usd-per-hour', flags.maxUsdPerHour, 1_000_000) }
      : {}),
    ...(flags.ttl !== undefined ? { ttlSeconds: parseIntegerIn('--ttl', flags.ttl, 1, 30 * 86_400) } : {}),
    ...(flags.idempotencyKey !== undefined ? { idempotencyKey: flags.idempotencyKey } : {}),
  };
}

/** Runs a wait that Ctrl-C aborts (the SDK then releases the pending lease). */
async function untilInterrupted<T>(wait: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const interrupt = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', interrupt);
  try {
    return await wait(controller.signal);
  } finally {
    process.off('SIGINT', interrupt);
  }
}

/** Reports a pending lease on stderr when first seen and then every few seconds. */
function progressReporter(): (lease: Lease) => void {
  let lastReportMs: number | undefined;
  return (lease) => {
    const now = Date.now();
    if (lastReportMs === undefined) {
      process.stderr.write(
        `lease ${lease.id} pending: waiting for ${lease.count}× ${lease.gpu} while the broker buys capacity\n`,
      );
      lastReportMs = now;
    } else if (now - lastReportMs >= PROGRESS_EVERY_MS) {
      process.stderr.write(`lease ${lease.id} still pending after ${formatAge(now - lease.createdAtMs)}\n`);
      lastReportMs = now;
    }
  };
}

const usd = (value: number | null) => (value === null ? '-' : `$${value.toFixed(2)}`);

function describeLease(lease: Lease): string {
  const head = `lease ${lease.id} ${lease.status}: ${lease.count}× ${lease.gpu} (${lease.placement})`;
  const cost = lease.usdPerHour === null ? '' : `, ${usd(lease.usdPerHour)}/h`;
  const expires = lease.expiresAtMs === null ? '' : `, expires ${new Date(lease.expiresAtMs).toISOString()}`;
  const lines = [`${head}${cost}${expires}`];
  if (lease.reason) lines.push(`  reason: ${lease.reason}`);
  for (const a of lease.allocations)
    lines.push(
      `  ${a.vendor} ${a.zone} ${a.instanceType} ${a.capacityType} ${a.instanceId} GPUs ${a.gpuIndices.join(',')}`,
    );
  if (lease.status === 'pending') lines.push('  follow it with `gpubroker lease list`');
  return `${lines.join('\n')}\n`;
}

function renderLeases(leases: readonly Lease[], nowMs: number): string {
  if (leases.length === 0) return 'no leases\n';
  const table = new Table({
    head: ['id', 'status', 'GPUs', 'allocations', 'USD/h', 'age'],
    style: { head: [], border: [], compact: true },
  });
  for (const lease of leases)
    table.push([
      lease.id,
      lease.status,
      `${lease.count}× ${lease.gpu}`,
      lease.allocations.map((a) => `${a.vendor}/${a.region}/${a.instanceType}`).join('\n') || '-',
      usd(lease.usdPerHour),
      formatAge(nowMs - lease.createdAtMs),
    ]);
  return `${table.toString()}\n`;
}
