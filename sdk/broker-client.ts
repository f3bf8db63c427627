/**
 * The TypeScript client of the broker's HTTP API. Its types are the wire contract's: wire.gen.ts is generated from
 * the broker's OpenAPI document (see wire.ts), so the SDK and the server agree, and the SDK depends on nothing.
 *
 *   import { Broker } from '@gpubroker/sdk';
 *   const broker = new Broker();                      // GPUBROKER_URL, GPUBROKER_TOKEN, or the local operator token
 *   await using lease = await broker.gpus.request({ gpu: 'H100', count: 8, placement: 'single-node' });
 *   console.log(lease.allocations);                    // released when the block ends
 */
import { createHash } from 'node:crypto';
import {
  ApiClient,
  BrokerApiError,
  type BrokerClientOptions,
  type Problem,
  problemOf,
} from './api-client.ts';
import { App, type FunctionHandle } from './app.ts';
import type { paths, Schemas } from './wire.ts';

export { BrokerApiError, type BrokerClientOptions, type Problem };

/** A lease of GPUs: `pending` until its capacity is there, then `ready` with its allocations. */
export type Lease = Schemas['Lease'];
/** What to lease: `gpu` and `count`, and optionally placement, regions, vendors, capacity type, price cap, TTL. */
export type LeaseRequestInput = Schemas['LeaseRequest'];

/** One version of the broker policy: the whole policy, who set it and when, and what changed from the one before. */
export type PolicyVersion = Schemas['PolicyVersion'];
/** A new API token; `token` is shown only in this answer. */
export type CreatedToken = Schemas['Token'];

/** Metered usage in a window, one row per tenant × key, with totals. */
export type Usage = Schemas['Usage'];
/** One row of usage: seconds and GPU-seconds (each interval rounded up to whole seconds) and their price. */
export type UsageRow = Usage['rows'][number];
/** A tenant's invoice for a month (`open`: computed now; `closed`: frozen); amounts in integer micro-USD. */
export type Invoice = Schemas['Invoice'];
/** One line of an invoice: a GPU type × lease or function × rate; `lateFrom` marks late usage of a closed month. */
export type InvoiceLine = Invoice['lines'][number];
/** Fleet cost against billed usage per GPU type over a window (operator). */
export type CostReport = Schemas['Costs'];
/** One version of the price book, with the effective micro-USD per GPU-second of every GPU type. */
export type PriceBookVersion = Schemas['PriceBookVersion'];
/**
 * Limits to change: `gpuQuota` (most GPUs held at once), `spendLimitUsdPerHour` (billed in the last hour),
 * `spendLimitUsdPerMonth` (billed this calendar month), `onSpendLimit` (`continue`: only new leases are refused;
 * `stop`: running leases are released too). A field left out stays as it is; null removes that limit.
 */
export type TenantLimitsInput = Schemas['TenantLimits'];
/** A tenant's limits as the broker answers them: every field present, null where there is no limit. */
export type TenantLimits = { [K in keyof TenantLimitsInput]-?: Exclude<TenantLimitsInput[K], undefined> };

/** A deployed app: its bundle, version, functions, containers (total, ready) and calls (done, total). */
export type AppStatus = Schemas['AppStatus'];
/** What a deploy names: the uploaded bundle's id, each function's options, and whether the app is a run's. */
export type DeployInput = Schemas['Deploy'];
/** One line a container of an app wrote. */
export type LogLine = Schemas['LogLine'];
/** An image layer on the broker: its tarball's SHA-256 and size. */
export type Layer = Schemas['Layer'];

/** A point in time for a query: a Date, or ISO 8601 text (`2026-11-01`, `2026-11-23T10:00:00Z`). */
export type TimeInput = string | Date;

export interface UsageQuery {
  /** Start (inclusive); default: the start of this month (UTC). */
  readonly from?: TimeInput;
  /** End (exclusive); default: now. */
  readonly to?: TimeInput;
  /** What a row is: `gpu` type (the default), `lease`, `function` or `day` (UTC, of the usage's start). */
  readonly groupBy?: NonNullable<paths['/v1/usage']['get']['parameters']['query']>['groupBy'];
  /** Operators: one tenant only (a tenant token may name only itself). */
  readonly tenant?: string;
}

export interface TenantScope {
  /** Operators: one tenant only (default: every tenant); a tenant token always sees only its own. */
  readonly tenant?: string;
}

export interface CreateTokenInput {
  /** The tenant's name (1–63 lower-case letters, digits, ".", "_" or "-"); created if it does not exist. */
  readonly tenant: string;
  /** An operator token (manages policy and tokens, sees every lease); default: a tenant token. */
  readonly operator?: boolean;
  /** Most GPUs the tenant may hold at once (null: no limit); omitted: unchanged for an existing tenant. */
  readonly gpuQuota?: number | null;
}

export interface RequestGpusOptions {
  /** Stops waiting (the lease is released). */
  readonly signal?: AbortSignal;
  /** Gives up after this long (the lease is released); default: wait as long as it takes. */
  readonly timeoutMs?: number;
  /** Longest a single wait for a pending lease lasts before it is asked again; default 20 s (a long poll). */
  readonly pollMs?: number;
  /** Called with the lease each time it is checked while pending. */
  readonly onProgress?: (lease: Lease) => void;
}

/** How long one long poll for a pending lease waits at most (the broker allows up to 60 s). */
const LEASE_LONG_POLL_MS = 20_000;

/** Rejects with the signal's reason when it aborts first. */
function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** What `exec` may be told besides the command. */
export interface ExecOptions {
  /** Each piece of output as the command writes it. Default: written to this process's stdout and stderr. */
  readonly onOutput?: (stream: 'stdout' | 'stderr', data: Uint8Array) => void;
  /** Added to the command's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Which of the lease's machines (the order of its allocations; default 0). */
  readonly node?: number;
  /** Kills the command (the broker kills it when the connection closes). */
  readonly signal?: AbortSignal;
}

/** One line of an exec's answer. */
type ExecEvent = { stream: 'stdout' | 'stderr'; data: string } | { exit: ExecResult };
/** Most bytes of input one request carries (its base64 stays under the broker's limit). */
const MAX_SHELL_INPUT_BYTES = 512 * 1024;

/** How a command run with `exec` ended: its exit code, or the signal that ended it, or why it could not run. */
export interface ExecResult {
  readonly code: number | null;
  readonly signal: string | null;
  readonly error?: string;
}

/** What `shell` may be told. */
export interface ShellOptions {
  /** The terminal's output as it comes (one stream). Default: written to this process's stdout. */
  readonly onOutput?: (data: Uint8Array) => void;
  /** The command and its arguments; default: bash, or sh on a machine without bash. */
  readonly command?: readonly string[];
  /** Added to its environment (TERM is xterm-256color unless given here). */
  readonly env?: Readonly<Record<string, string>>;
  /** Which of the lease's machines (the order of its allocations; default 0). */
  readonly node?: number;
  /** The terminal's size; default 80 × 24. */
  readonly cols?: number;
  readonly rows?: number;
}

/** An interactive shell on a lease's machine, under a pseudo-terminal (`broker.leases.shell`). */
export interface LeaseShell {
  /** Types into the terminal: keystrokes, pasted or piped text, delivered in order. */
  write(data: string | Uint8Array): void;
  /** Closes its input, after what was written: the shell reads end of file (as after Ctrl-D) and exits. */
  end(): void;
  /** The terminal's new size (its foreground programs get SIGWINCH). */
  resize(cols: number, rows: number): void;
  /** How the shell ended: its exit code, the signal that ended it, or why it could not run or was cut off. */
  readonly exit: Promise<ExecResult>;
  /** Ends the shell now (the broker kills it). */
  close(): void;
}

/** A ready lease that can release itself (also with `await using`) and run commands on its machine. */
export type LeaseHandle = Lease & {
  release(): Promise<Lease>;
  /** Runs `command` on the lease's machine with CUDA_VISIBLE_DEVICES set to exactly its GPUs. */
  exec(command: string | readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** An interactive shell on the lease's machine, under a pseudo-terminal (see `broker.leases.shell`). */
  shell(options?: ShellOptions): Promise<LeaseShell>;
  [Symbol.asyncDispose](): Promise<void>;
};

/** The broker said no for good: the lease failed (reason), or waiting was abandoned. */
export class LeaseFailedError extends Error {
  constructor(
    readonly lease: Lease,
    message: string,
  ) {
    super(message);
    this.name = 'LeaseFailedError';
  }
}

export class Broker extends ApiClient {
  readonly gpus = {
    /** Requests GPUs and resolves when the lease is ready; rejects with LeaseFailedError when it cannot be. */
    request: (request: LeaseRequestInput, options: RequestGpusOptions = {}) =>
      this.requestGpus(request, options),
  };

  readonly functions = {
    /**
     * A deployed function (`gpubroker deploy`), callable from any process with `remote`, `map` and `spawn`:
     * `const square = broker.functions.lookup('demo', 'square'); await square.remote(3)`.
     */
    lookup: <A extends unknown[] = unknown[], R = unknown>(app: string, name: string): FunctionHandle<A, R> =>
      new App(app).connect(this).function<A, R>({ gpu: 'any', name }, () => {
        throw new Error(`${app}.${name} was looked up: call it with remote, map or spawn`);
      }) as unknown as FunctionHandle<A, R>,
  };

  readonly leases = {
    /** Creates a lease and answers at once (ready, pending or failed with a reason); `gpus.request` waits. */
    create: (request: LeaseRequestInput): Promise<Lease> => this.api('post', '/v1/leases', { body: request }),
    list: async (): Promise<Lease[]> => (await this.api('get', '/v1/leases')).leases,
    /** The lease; with `waitMs`, the broker answers once it is no longer pending or that long passed. */
    get: (id: string, options: { waitMs?: number } = {}): Promise<Lease> =>
      this.api('get', '/v1/leases/{id}', {
        params: { id },
        ...(options.waitMs === undefined ? {} : { query: { waitMs: Math.floor(options.waitMs) } }),
      }),
    release: (id: string): Promise<Lease> => this.api('delete', '/v1/leases/{id}', { params: { id } }),
    /**
     * Runs a command on a ready lease's machine (its agent runs it with CUDA_VISIBLE_DEVICES set to the lease's
     * GPUs); output streams to `onOutput` as it is written; resolves with the exit.
     */
    exec: (id: string, command: string | readonly string[], options: ExecOptions = {}): Promise<ExecResult> =>
      this.execOnLease(id, command, options),
    /**
     * Opens an interactive shell on a ready lease's machine, under a pseudo-terminal of `cols` × `rows`, in the same
     * sandbox and with the same GPUs as `exec`; resolves once it runs (a BrokerApiError when it cannot: 404 for an
     * unknown lease, 409 for one not ready). Two plain HTTP requests carry it, no WebSocket: the output streams on
     * the one that opened it, the input and resizes go on short ones, one at a time, in order.
     */
    shell: (id: string, options: ShellOptions = {}): Promise<LeaseShell> => this.shellOnLease(id, options),
  };

  readonly apps = {
    /**
     * Deploys an app, or re-deploys it with new code: upload its bundle first (`bundles.upload`). Every function's
     * options are checked before anything changes (a BrokerApiError naming e.g. `functions.square.gpu`).
     */
    deploy: (name: string, deploy: DeployInput): Promise<AppStatus> =>
      this.api('put', '/v1/apps/{name}', { params: { name }, body: deploy }),
    get: (name: string): Promise<AppStatus> => this.api('get', '/v1/apps/{name}', { params: { name } }),
    list: async (): Promise<AppStatus[]> => (await this.api('get', '/v1/apps')).apps,
    /**
     * Stops an app: its containers stop and unfinished calls fail. With `keepWarm` its containers stay until their
     * scale-down window has passed (the answer says when), so that deploying the same code again reuses them.
     */
    stop: (name: string, options: { keepWarm?: boolean } = {}): Promise<{ stopsAtMs?: number }> =>
      this.api('delete', '/v1/apps/{name}', {
        params: { name },
        ...(options.keepWarm ? { query: { keepWarm: 'true' as const } } : {}),
      }),
    /** The app's container output as it comes, until the app stops or `signal` aborts. */
    logs: (name: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<LogLine> =>
      this.streamLogs(name, options.signal),
  };

  readonly bundles = {
    /**
     * Uploads an app's bundle (one ES module) unless the broker has it already; it is named by its SHA-256, which
     * the answer gives with whether the bytes went up.
     */
    upload: async (code: Uint8Array): Promise<{ id: string; uploaded: boolean }> => {
      const id = createHash('sha256').update(code).digest('hex');
      try {
        await this.api('get', '/v1/bundles/{id}', { params: { id } });
        return { id, uploaded: false };
      } catch (error) {
        if (!(error instanceof BrokerApiError) || error.status !== 404) throw error;
      }
      const response = await this.fetch(`/v1/bundles/${id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/javascript' },
        body: code,
        checked: true,
      });
      return (await response.json()) as { id: string; uploaded: boolean };
    },
  };

  readonly layers = {
    /** The layer, or undefined when the broker does not have it (build and upload it). */
    get: async (id: string): Promise<Layer | undefined> => {
      try {
        return await this.api('get', '/v1/layers/{id}', { params: { id } });
      } catch (error) {
        if (error instanceof BrokerApiError && error.status === 404) return undefined;
        throw error;
      }
    },
    /** Uploads a layer's gzip tarball of node_modules under the hash of its image's recipe. */
    upload: async (id: string, tarball: ReadableStream<Uint8Array> | Uint8Array): Promise<Layer> => {
      const response = await this.fetch(`/v1/layers/${id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/gzip' },
        body: tarball,
        checked: true,
        ...(tarball instanceof Uint8Array ? {} : { duplex: 'half' }),
      } as RequestInit & { checked: boolean });
      return (await response.json()) as Layer;
    },
  };

  readonly policy = {
    /** The policy in force (version 0 is the all-defaults policy). Any token may read it. */
    get: (): Promise<PolicyVersion> => this.api('get', '/v1/policy'),
    /**
     * Stores a new version (operator token); it takes effect at the next tick. Fields left out take their
     * defaults. An invalid policy is a BrokerApiError (400) whose `field` names what was wrong, e.g.
     * `policy.spotMaxShare`; nothing is stored then.
     */
    set: (policy: Record<string, unknown>): Promise<PolicyVersion> =>
      this.api('put', '/v1/policy', { body: policy }),
    /** Every stored version, newest first (operator token); empty while the defaults are in force. */
    history: async (): Promise<PolicyVersion[]> => (await this.api('get', '/v1/policy/history')).versions,
  };

  readonly tokens = {
    /** Creates a token for a tenant (operator token); the answer is the only time the token is visible. */
    create: (input: CreateTokenInput): Promise<CreatedToken> =>
      this.api('post', '/v1/tokens', {
        body: {
          tenant: input.tenant,
          role: input.operator ? 'operator' : 'tenant',
          ...(input.gpuQuota !== undefined ? { gpuQuota: input.gpuQuota } : {}),
        },
      }),
  };

  readonly invoices = {
    /** Invoices from each tenant's first usage to this month, newest first (a tenant token: its own only). */
    list: async (scope: TenantScope = {}): Promise<Invoice[]> =>
      (await this.api('get', '/v1/invoices', { query: { tenant: scope.tenant } })).invoices,
    /**
     * The invoices of one month (`YYYY-MM`, UTC), one per tenant in scope: a tenant token gets its own only. A
     * month not like 2026-11 is a BrokerApiError (400, field `month`).
     */
    get: async (month: string, scope: TenantScope = {}): Promise<Invoice[]> =>
      (await this.api('get', '/v1/invoices/{month}', { params: { month }, query: { tenant: scope.tenant } }))
        .invoices,
    /**
     * Closes a month that has ended (operator token): every tenant's invoice of it is frozen, and usage that
     * arrives later for it is billed on the next open month. A month not yet ended is a BrokerApiError (400,
     * field `month`); closing again changes nothing.
     */
    close: async (month: string): Promise<Invoice[]> =>
      (await this.api('post', '/v1/invoices/{month}/close', { params: { month } })).invoices,
  };

  readonly prices = {
    /** The price book in force (version 0: the defaults) with the effective rate per GPU type. Any token. */
    get: (): Promise<PriceBookVersion> => this.api('get', '/v1/prices'),
    /**
     * Stores a new price book version (operator token); fields left out take their defaults. An invalid book is
     * a BrokerApiError (400) whose `field` names what was wrong, e.g. `priceBook.markup`; nothing is stored then.
     */
    set: (book: Record<string, unknown>): Promise<PriceBookVersion> =>
      this.api('put', '/v1/prices', { body: book }),
    /** Every stored version, newest first (operator token); empty while the defaults are in force. */
    history: async (): Promise<PriceBookVersion[]> => (await this.api('get', '/v1/prices/history')).versions,
  };

  readonly tenants = {
    /**
     * Changes a tenant's GPU quota and spend limits (operator token) and answers the limits in force; `{}` only
     * reads them. An unknown tenant is a BrokerApiError (404).
     */
    setLimits: async (name: string, limits: TenantLimitsInput): Promise<TenantLimits> =>
      (await this.api('put', '/v1/tenants/{name}/limits', {
        params: { name },
        body: limits,
      })) as TenantLimits,
  };

  /**
   * Metered usage in a window, grouped by GPU type, lease, function or day: a tenant token sees its own, an
   * operator every tenant's (or `tenant`'s). A bad window or grouping is a BrokerApiError (400) naming the field.
   */
  usage(options: UsageQuery = {}): Promise<Usage> {
    const { from, to, groupBy, tenant } = options;
    return this.api('get', '/v1/usage', { query: { from: iso(from), to: iso(to), groupBy, tenant } });
  }

  /**
   * What the fleet cost against what tenants were billed, per GPU type, with utilisation (billed / provisioned
   * GPU-seconds) and margin (operator token). Default window: this month so far.
   */
  costs(options: { readonly from?: TimeInput; readonly to?: TimeInput } = {}): Promise<CostReport> {
    return this.api('get', '/v1/costs', { query: { from: iso(options.from), to: iso(options.to) } });
  }

  private async *streamLogs(name: string, signal: AbortSignal | undefined): AsyncGenerator<LogLine> {
    const response = await this.fetch(`/v1/apps/${encodeURIComponent(name)}/logs`, {
      checked: true,
      ...(signal ? { signal } : {}),
    });
    if (response.body) yield* ndjsonLines<LogLine>(response.body);
  }

  private async execOnLease(
    id: string,
    command: string | readonly string[],
    options: ExecOptions = {},
  ): Promise<ExecResult> {
    const [program, ...args] = typeof command === 'string' ? ['/bin/sh', '-c', command] : command;
    if (!program) throw new TypeError('exec needs a command');
    const response = await this.fetch(`/v1/leases/${encodeURIComponent(id)}/exec`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ command: program, args, env: options.env ?? {}, node: options.node ?? 0 }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!response.ok || !response.body) throw new BrokerApiError(problemOf(response, await response.text()));
    const onOutput =
      options.onOutput ??
      ((stream: 'stdout' | 'stderr', data: Uint8Array) =>
        (stream === 'stdout' ? process.stdout : process.stderr).write(data));
    for await (const event of ndjsonLines<ExecEvent>(response.body)) {
      if ('exit' in event) return event.exit;
      onOutput(event.stream, Buffer.from(event.data, 'base64'));
    }
    return { code: null, signal: null, error: 'the broker closed the connection before the command ended' };
  }

  private async shellOnLease(id: string, options: ShellOptions): Promise<LeaseShell> {
    const [command, ...args] = options.command ?? [];
    const opened = new AbortController();
    const response = await this.fetch(`/v1/leases/${encodeURIComponent(id)}/shell`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        ...(command === undefined ? {} : { command, args }),
        env: options.env ?? {},
        node: options.node ?? 0,
        cols: options.cols ?? 80,
        rows: options.rows ?? 24,
      }),
      signal: opened.signal,
    });
    if (!response.ok || !response.body) throw new BrokerApiError(problemOf(response, await response.text()));
    const events = ndjsonLines<ExecEvent | { session: string }>(response.body);
    const first = await events.next();
    if (first.done || !('session' in first.value)) {
      opened.abort();
      throw new Error('the broker answered a shell without its session');
    }
    const session = first.value.session;
    const onOutput = options.onOutput ?? ((data: Uint8Array) => process.stdout.write(data));
    let ended: ExecResult | undefined;
    const exit = (async (): Promise<ExecResult> => {
      try {
        for await (const event of events) {
          if ('exit' in event) return event.exit;
          if ('data' in event) onOutput(Buffer.from(event.data, 'base64'));
        }
        return { code: null, signal: null, error: 'the broker closed the connection before the shell ended' };
      } catch (error) {
        return { code: null, signal: null, error: ended?.error ?? (error as Error).message };
      }
    })().then((result) => {
      ended ??= result;
      return ended;
    });
    // What is waiting to be sent: one request at a time, so that the keystrokes arrive in order.
    let typed: Buffer[] = [];
    let size: { cols: number; rows: number } | undefined;
    let eof: 'no' | 'wanted' | 'sent' = 'no';
    let sending = false;
    const send = async () => {
      if (sending) return;
      sending = true;
      try {
        while (!ended && (typed.length > 0 || size || eof === 'wanted')) {
          const data = Buffer.concat(typed);
          const chunk = data.subarray(0, MAX_SHELL_INPUT_BYTES);
          typed = chunk.length < data.length ? [data.subarray(chunk.length)] : [];
          const last = typed.length === 0 && eof === 'wanted';
          const resize = size;
          size = undefined;
          await this.api('post', '/v1/leases/{id}/shell/{session}', {
            params: { id, session },
            body: {
              ...(chunk.length > 0 ? { data: chunk.toString('base64') } : {}),
              ...(last ? { eof: true } : {}),
              ...(resize ? { resize } : {}),
            },
          });
          if (last) eof = 'sent';
        }
      } catch (error) {
        // A shell that has just ended is no longer there to type into (404, its exit on the way); otherwise the
        // input is lost: end it.
        if (!ended && !(error instanceof BrokerApiError && error.status === 404)) {
          ended = {
            code: null,
            signal: null,
            error: `its input could not be sent: ${(error as Error).message}`,
          };
          opened.abort();
        }
      } finally {
        sending = false;
      }
    };
    return {
      write(data) {
        if (ended || eof !== 'no') return;
        typed.push(typeof data === 'string' ? Buffer.from(data) : Buffer.from(data));
        void send();
      },
      end() {
        if (ended || eof !== 'no') return;
        eof = 'wanted';
        void send();
      },
      resize(cols, rows) {
        if (ended) return;
        size = { cols, rows };
        void send();
      },
      exit,
      close() {
        if (ended) return;
        ended = { code: null, signal: null, error: 'closed' };
        opened.abort();
      },
    };
  }

  private async requestGpus(request: LeaseRequestInput, options: RequestGpusOptions): Promise<LeaseHandle> {
    let lease = await this.leases.create(request);
    const deadline =
      options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : this.clock.now() + options.timeoutMs;
    while (lease.status === 'pending') {
      options.onProgress?.(lease);
      const wait = Math.min(options.pollMs ?? LEASE_LONG_POLL_MS, deadline - this.clock.now());
      try {
        if (wait <= 0) throw new Error(`not ready within ${options.timeoutMs} ms`);
        options.signal?.throwIfAborted();
        // The broker answers as soon as the lease leaves pending (a long poll), or after `wait`.
        lease = await abortable(this.leases.get(lease.id, { waitMs: wait }), options.signal);
      } catch (error) {
        const released = await this.leases.release(lease.id);
        throw new LeaseFailedError(
          released,
          `gave up waiting for lease ${lease.id}: ${(error as Error).message}`,
        );
      }
    }
    if (lease.status !== 'ready')
      throw new LeaseFailedError(lease, `lease ${lease.id} ${lease.status}: ${lease.reason}`);
    const release = () => this.leases.release(lease.id);
    const id = lease.id;
    return {
      ...lease,
      release,
      exec: (command, execOptions) => this.execOnLease(id, command, execOptions),
      shell: (shellOptions) => this.shellOnLease(id, shellOptions ?? {}),
      [Symbol.asyncDispose]: async () => {
        await release();
      },
    };
  }
}

/** The lines of an application/x-ndjson answer, parsed, as they arrive. */
async function* ndjsonLines<T>(body: ReadableStream<Uint8Array>): AsyncGenerator<T> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    let start = 0;
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      const line = pending.slice(start, newline);
      if (line !== '') yield JSON.parse(line) as T;
      start = newline + 1;
      newline = pending.indexOf('\n', start);
    }
    pending = pending.slice(start);
  }
}

/** A query's time as ISO 8601 text (a Date converted; text passed as it is, for the broker to check). */
function iso(time: TimeInput | undefined): string | undefined {
  return time instanceof Date ? time.toISOString() : time;
}
