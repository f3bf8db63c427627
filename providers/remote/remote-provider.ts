/**
 * A Provider whose cloud runs in another process (`gpubroker clouds serve`, see `provider-server.ts`). Calls are
 * HTTP requests; a connection failure is a ProviderUnavailableError (outcome unknown: repeat with the same key).
 *
 * Events: one upstream NDJSON stream per client, opened by `connect()` before it resolves, feeds a local hub, so
 * `events()` sees everything from the moment of its call on, as the contract says. When the stream drops, the
 * client reconnects with the last sequence number it saw and the server replays what it missed.
 *
 * A server that restarted (another epoch: the clouds' process crashed and came back from its state file) cannot
 * replay what happened while it was down. The client then reads the inventory and publishes, for every instance
 * whose state its events last told differently, the change as an event (a boot that finished, an instance that
 * ended, a reclaim notice), so that whoever follows the events is not left behind.
 */
import { type Clock, RealClock } from '../../lib/clock.ts';
import { EventHub } from '../event-hub.ts';
import type {
  EventsOptions,
  Instance,
  InstanceState,
  ListFilter,
  OfferingQuote,
  Provider,
  ProviderEvent,
  ProviderQuota,
  ProvisionRequest,
} from '../provider.ts';
import { ProviderUnavailableError } from '../provider-errors.ts';
import { type EventLine, errorFromWire, type WireError } from './wire.ts';

export interface RemoteProviderOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8790`. */
  readonly url: string;
  readonly vendor: string;
  /** For reconnection backoff; default the real clock. */
  readonly clock?: Clock;
}

export class RemoteProvider implements Provider {
  readonly vendor: string;
  private readonly base: string;
  private readonly clock: Clock;
  private readonly hub = new EventHub<ProviderEvent>();
  private readonly stop = new AbortController();
  private seq = 0;
  private readonly seqWaiters = new Set<{ seq: number; resolve: () => void }>();
  private reader: Promise<void> = Promise.resolve();
  /** What the events published so far told of each instance not yet ended (to catch up after a server restart). */
  private readonly told = new Map<string, Told>();

  private constructor(options: RemoteProviderOptions) {
    this.vendor = options.vendor;
    this.base = `${options.url.replace(/\/+$/, '')}/v1/${encodeURIComponent(options.vendor)}`;
    this.clock = options.clock ?? new RealClock();
  }

  /** Connects to one vendor of a provider server; resolves once its event stream is open. */
  static async connect(options: RemoteProviderOptions): Promise<RemoteProvider> {
    const provider = new RemoteProvider(options);
    const body = await provider.openStream(undefined);
    provider.reader = provider.follow(body);
    return provider;
  }

  async offerings(): Promise<OfferingQuote[]> {
    return this.call<OfferingQuote[]>('GET', '/offerings');
  }

  async quotas(): Promise<ProviderQuota[]> {
    return this.call<ProviderQuota[]>('GET', '/quotas');
  }

  async provision(request: ProvisionRequest): Promise<Instance[]> {
    return this.call<Instance[]>('POST', '/provision', request);
  }

  async terminate(instanceIds: readonly string[]): Promise<void> {
    await this.call<undefined>('POST', '/terminate', { instanceIds });
  }

  async list(filter: ListFilter = {}): Promise<Instance[]> {
    return this.call<Instance[]>('POST', '/list', filter);
  }

  events(options: EventsOptions = {}): AsyncIterable<ProviderEvent> {
    return this.hub.iterate(options.signal);
  }

  /** Resolves once every event the server had published when this was called has reached `events()`. */
  async sync(): Promise<void> {
    const { seq } = await this.call<{ seq: number }>('GET', '/seq');
    if (this.seq >= seq) return;
    await new Promise<void>((resolve) => this.seqWaiters.add({ seq, resolve }));
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.reader;
    this.hub.close();
    for (const waiter of this.seqWaiters) waiter.resolve();
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response | undefined;
    // Every call of the contract is idempotent, so one retry on a dropped connection (a pooled socket the server
    // closed) is safe; a second failure means the server is down.
    for (let attempt = 1; !response; attempt++) {
      try {
        response = await fetch(`${this.base}${path}`, {
          method,
          ...(body === undefined
            ? {}
            : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
        });
      } catch (error) {
        if (attempt < 2) continue;
        throw new ProviderUnavailableError(
          this.vendor,
          undefined,
          `cannot reach ${this.base}: ${(error as Error).message}`,
          { cause: error },
        );
      }
    }
    const text = await response.text();
    if (!response.ok) {
      let wire: WireError | undefined;
      try {
        wire = JSON.parse(text) as WireError;
      } catch {}
      throw errorFromWire(
        wire?.code
          ? wire
          : { code: 'provider_unavailable', vendor: this.vendor, detail: `HTTP ${response.status}` },
      );
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }

  private async openStream(after: number | undefined): Promise<ReadableStreamDefaultReader<Uint8Array>> {
    const query = after === undefined ? '' : `?after=${after}&epoch=${this.epoch}`;
    let response: Response;
    try {
      response = await fetch(`${this.base}/events${query}`, { signal: this.stop.signal });
    } catch (error) {
      throw new ProviderUnavailableError(
        this.vendor,
        undefined,
        `cannot reach ${this.base}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    if (!response.ok || !response.body)
      throw new ProviderUnavailableError(this.vendor, undefined, `events: HTTP ${response.status}`);
    const reader = response.body.getReader();
    // The opening line fixes where this stream starts, so `connect()` resolves only once it is known.
    const { line, rest } = await readLine(reader, '');
    const hello = JSON.parse(line ?? '{}') as { seq?: number; epoch?: string };
    // A new server (another epoch) numbers from its own start: what happened in between is lost to replay, so
    // the inventory tells it instead (before any event of the new stream is read).
    const restarted = after !== undefined && hello.epoch !== this.epoch;
    if (restarted)
      try {
        await this.catchUp();
      } catch (error) {
        // Tried again with the next connection: the epoch stays the old one until the inventory was read.
        await reader.cancel().catch(() => undefined);
        throw error;
      }
    if (after === undefined || restarted) this.seq = hello.seq ?? 0;
    this.epoch = hello.epoch ?? '';
    this.pending = rest;
    return reader;
  }

  /** Publishes what changed, by the inventory, since the events last told (after the server restarted). */
  private async catchUp(): Promise<void> {
    if (this.told.size === 0) return;
    const listed = new Map((await this.list({ includeTerminated: true })).map((i) => [i.id, i]));
    const now = this.clock.now();
    for (const [id, told] of [...this.told]) {
      const instance = listed.get(id);
      const base = { vendor: this.vendor, instanceId: id, offeringId: told.offeringId, zone: told.zone };
      if (
        instance?.interruptAtMs !== undefined &&
        told.interruptAtMs === undefined &&
        instance.state !== 'terminated'
      )
        this.publish({
          kind: 'interruption-notice',
          atMs: now,
          ...base,
          terminateAtMs: instance.interruptAtMs,
        });
      if (instance?.state === told.state) continue;
      const to: InstanceState = instance?.state ?? 'terminated';
      const atMs =
        to === 'running'
          ? (instance?.runningAtMs ?? now)
          : to === 'terminated'
            ? (instance?.terminatedAtMs ?? now)
            : now;
      this.publish({
        kind: 'state-changed',
        atMs,
        ...base,
        from: told.state,
        to,
        ...(to === 'terminated' ? { reason: instance?.terminationReason ?? 'failed' } : {}),
      });
    }
  }

  private pending = '';
  private epoch = '';

  /** Publishes an event and remembers what it told of its instance. */
  private publish(event: ProviderEvent): void {
    if (event.kind === 'state-changed') {
      if (event.to === 'terminated') this.told.delete(event.instanceId);
      else {
        const before = this.told.get(event.instanceId);
        this.told.set(event.instanceId, {
          offeringId: event.offeringId,
          zone: event.zone,
          state: event.to,
          ...(before?.interruptAtMs === undefined ? {} : { interruptAtMs: before.interruptAtMs }),
        });
      }
    } else if (event.kind === 'interruption-notice') {
      const before = this.told.get(event.instanceId);
      if (before) this.told.set(event.instanceId, { ...before, interruptAtMs: event.terminateAtMs });
    }
    this.hub.publish(event);
  }

  /** Reads events until closed, reconnecting (with backoff) from the last sequence number seen. */
  private async follow(first: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined = first;
    let backoffMs = 100;
    while (!this.stop.signal.aborted) {
      try {
        reader ??= await this.openStream(this.seq);
        backoffMs = 100;
        for (;;) {
          const { line, rest } = await readLine(reader, this.pending);
          this.pending = rest;
          if (line === undefined) break;
          if (line.trim() === '') continue;
          this.deliver(JSON.parse(line) as EventLine);
        }
      } catch {
        // Dropped or refused: try again below unless closing.
      }
      reader = undefined;
      this.pending = '';
      if (this.stop.signal.aborted) return;
      await this.clock.sleep(backoffMs, this.stop.signal).catch(() => {});
      backoffMs = Math.min(backoffMs * 2, 5000);
    }
  }

  private deliver(line: EventLine): void {
    if (!('event' in line) || line.seq <= this.seq) return;
    this.seq = line.seq;
    this.publish(line.event as ProviderEvent);
    for (const waiter of this.seqWaiters)
      if (waiter.seq <= this.seq) {
        this.seqWaiters.delete(waiter);
        waiter.resolve();
      }
  }
}

const decoder = new TextDecoder();

interface Told {
  readonly offeringId: string;
  readonly zone: string;
  readonly state: InstanceState;
  readonly interruptAtMs?: number;
}

/** The next newline-terminated line (undefined at the end of the stream) and what was read past it. */
async function readLine(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  buffered: string,
): Promise<{ line: string | undefined; rest: string }> {
  let text = buffered;
  for (;;) {
    const newline = text.indexOf('\n');
    if (newline >= 0) return { line: text.slice(0, newline), rest: text.slice(newline + 1) };
    const { value, done } = await reader.read();
    if (done) return { line: undefined, rest: '' };
    text += decoder.decode(value, { stream: true });
  }
}

/** Connects to every vendor a provider server serves. */
export async function connectRemoteProviders(url: string, clock?: Clock): Promise<RemoteProvider[]> {
  let vendors: string[];
  try {
    const response = await fetch(`${url.replace(/\/+$/, '')}/v1/vendors`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    vendors = ((await response.json()) as { vendors: string[] }).vendors;
  } catch (error) {
    throw new ProviderUnavailableError(
      'remote',
      undefined,
      `no provider server at ${url}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  return Promise.all(
    vendors.map((vendor) => RemoteProvider.connect({ url, vendor, ...(clock ? { clock } : {}) })),
  );
}
