/**
 * Apps and functions: write a function, say which GPU it needs, and call it from anywhere; it runs in containers on
 * the broker's capacity.
 *
 *   import { App } from '@gpubroker/sdk';
 *   export const app = new App('demo');
 *   export const square = app.function({ gpu: 'H100' }, async (x: number) => x * x);
 *   export async function main() { for await (const y of square.map([1, 2, 3])) console.log(y); }
 *
 * `gpubroker run FILE.ts` bundles the module, deploys it as an ephemeral app and runs `main` here while `square`
 * runs remotely. A handle is also a plain function: called directly (and inside its container) it runs locally.
 */
import { ApiClient, BrokerApiError } from './api-client.ts';
import type { Image } from './image.ts';
import type { Schemas } from './wire.ts';
import { assertWireSafe } from './wire-value.ts';

/**
 * Options of a function: the wire contract's (`FunctionOptions`, validated by the broker on deploy; see the README
 * for each), with the image as code and the function's name.
 */
export type FunctionOptions = Omit<Schemas['FunctionOptions'], 'image' | 'gpu' | 'regions'> & {
  /** `'H100'`, `'H100:8'` (8 GPUs on one node), or a preference list `['H100', 'A100-80GB']`. */
  readonly gpu: string | readonly string[];
  readonly regions?: readonly string[];
  /** What the containers run on: `Image.node20().npmInstall([...]).env({...})`; default the bare base. */
  readonly image?: Image;
  /** The function's name; default: the name of the export that holds it (or of the implementation). */
  readonly name?: string;
};

/** What a remote function threw: its message, and its stack inside the container. */
export class RemoteFunctionError extends Error {
  constructor(
    message: string,
    readonly remoteStack: string | undefined,
    readonly remoteName: string | undefined,
    readonly callId: string,
  ) {
    super(message);
    this.name = 'RemoteFunctionError';
    if (remoteStack)
      this.stack = `${this.name}: ${message}\n    --- remote (call ${callId}) ---\n${remoteStack}`;
  }
}

/** A call as the broker answers it: status, value or error, attempts, times. */
export type CallView = Schemas['Call'];

/** A call started with `spawn`. */
export class FunctionCall<R> {
  constructor(
    readonly id: string,
    private readonly broker: ApiClient,
  ) {}

  /** Waits for the result (RemoteFunctionError when it failed); `timeoutMs` gives up waiting, not the call. */
  async get(options: { timeoutMs?: number } = {}): Promise<R> {
    const { clock } = this.broker;
    const deadline =
      options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : clock.now() + options.timeoutMs;
    for (;;) {
      const waitMs = Math.max(0, Math.min(20_000, deadline - clock.now()));
      const view = await this.broker.api('get', '/v1/calls/{id}', {
        params: { id: this.id },
        query: { waitMs: Math.floor(waitMs) },
      });
      const outcome = outcomeOf<R>(view);
      if (outcome) return outcome.value;
      if (clock.now() >= deadline)
        throw new Error(`call ${this.id} not finished within ${options.timeoutMs} ms`);
    }
  }

  async cancel(): Promise<void> {
    await this.broker.api('delete', '/v1/calls/{id}', { params: { id: this.id } });
  }
}

export interface MapOptions {
  /** Yield results in input order (default) or as they finish. */
  readonly orderOutputs?: boolean;
  /** Yield a RemoteFunctionError in place of a failed input's result instead of throwing. */
  readonly returnExceptions?: boolean;
  /** Most inputs submitted and not yet yielded (back-pressure); default 1,000. */
  readonly window?: number;
}

/** A function of an app: callable locally, and remotely with `remote`, `map` and `spawn`. */
export type FunctionHandle<A extends unknown[], R> = ((...args: A) => Promise<R>) & {
  readonly app: App;
  readonly options: FunctionOptions;
  /** Set when named (by the export holding it, `options.name` or the implementation's name). */
  readonly functionName: string | undefined;
  /** Runs in a container and resolves with its result. */
  remote(...args: A): Promise<R>;
  /** Runs in a container; resolves at once with the call. */
  spawn(...args: A): Promise<FunctionCall<R>>;
  /** Runs once per input (the single argument), in parallel containers. */
  map(inputs: Iterable<A[0]> | AsyncIterable<A[0]>, options?: MapOptions): AsyncGenerator<R>;
  /** Like map, with each input the whole argument list. */
  starmap(inputs: Iterable<A> | AsyncIterable<A>, options?: MapOptions): AsyncGenerator<R>;
};

const HANDLE = Symbol.for('gpubroker.function');
/** Most inputs in one submit request. */
const BATCH = 500;
/** How long a `remote` call's submit waits for its result before it waits as `get` does (a long poll). */
const REMOTE_WAIT_MS = 20_000;

export class App {
  private readonly handles: FunctionHandle<never[], unknown>[] = [];
  private broker: ApiClient | undefined;

  constructor(readonly name: string) {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name))
      throw new TypeError(`App name "${name}": use 1–63 lower-case letters, digits or "-"`);
  }

  /** Talks to this broker (a `Broker`; default: the one GPUBROKER_URL / GPUBROKER_TOKEN name). */
  connect(broker: ApiClient): this {
    this.broker = broker;
    return this;
  }

  function<A extends unknown[], R>(
    options: FunctionOptions,
    implementation: (...args: A) => R | Promise<R>,
  ): FunctionHandle<A, Awaited<R>> {
    // Named by `options.name`, else by the export that holds it (nameFrom), else by the implementation's name.
    let functionName = options.name;
    const fallbackName = implementation.name || undefined;
    const local = async (...args: A) => (await implementation(...args)) as Awaited<R>;
    const named = {
      get functionName() {
        return functionName ?? fallbackName;
      },
    };
    const handle = Object.assign(local, {
      [HANDLE]: true,
      app: this,
      options,
      remote: (...args: A) => this.callAndWait<Awaited<R>>(named, args),
      spawn: async (...args: A) => {
        const [id] = await this.submit(named, [args]);
        return new FunctionCall<Awaited<R>>(id as string, this.client());
      },
      map: (
        inputs: Iterable<A[0]> | AsyncIterable<A[0]>,
        mapOptions?: MapOptions,
      ): AsyncGenerator<Awaited<R>> => this.mapInputs(named, inputs, (x) => [x] as unknown as A, mapOptions),
      starmap: (
        inputs: Iterable<A> | AsyncIterable<A>,
        mapOptions?: MapOptions,
      ): AsyncGenerator<Awaited<R>> => this.mapInputs(named, inputs, (x) => x, mapOptions),
    });
    Object.defineProperty(handle, 'functionName', {
      get: () => functionName ?? fallbackName,
      enumerable: true,
    });
    Object.defineProperty(handle, 'nameAs', {
      value: (name: string) => {
        functionName ??= name;
      },
    });
    this.handles.push(handle as unknown as FunctionHandle<never[], unknown>);
    return handle as unknown as FunctionHandle<A, Awaited<R>>;
  }

  /** Names each of this app's functions by the export that holds it (the CLI does this after importing a module). */
  nameFrom(exports: Readonly<Record<string, unknown>>): void {
    for (const [key, value] of Object.entries(exports))
      if (isFunctionHandle(value) && value.app === this)
        (value as unknown as { nameAs(name: string): void }).nameAs(key);
  }

  /**
   * The implementation of a named function, for the container worker (which also finds functions by export name).
   * Runs it locally: inside its container, a function is just a function.
   */
  __gpubrokerFunction(name: string): ((...args: unknown[]) => Promise<unknown>) | undefined {
    return this.handles.find((h) => h.functionName === name) as
      | ((...args: unknown[]) => Promise<unknown>)
      | undefined;
  }

  /** The functions to deploy: name → options as they travel (the image as its JSON, without `name`). */
  manifest(): Record<string, Schemas['FunctionOptions']> {
    const out: Record<string, Schemas['FunctionOptions']> = {};
    for (const handle of this.handles) {
      const name = handle.functionName;
      if (!name)
        throw new TypeError(`a function of app "${this.name}" has no name: export it, or pass { name }`);
      if (out[name]) throw new TypeError(`app "${this.name}" defines the function "${name}" twice`);
      const { name: _name, image, gpu, regions, ...options } = handle.options;
      out[name] = {
        ...options,
        gpu: typeof gpu === 'string' ? gpu : [...gpu],
        ...(regions ? { regions: [...regions] } : {}),
        // An Image, or its JSON from a plain object: what travels is its JSON.
        ...(image ? { image: JSON.parse(JSON.stringify(image)) as Schemas['Image'] } : {}),
      };
    }
    return out;
  }

  /** Submits inputs (each an argument list) and returns their call ids. */
  async submit(
    handle: { functionName: string | undefined },
    inputs: readonly unknown[][],
  ): Promise<string[]> {
    return (await this.submitCalls(handle, inputs)).callIds;
  }

  private submitCalls(
    handle: { functionName: string | undefined },
    inputs: readonly unknown[][],
    waitMs?: number,
  ): Promise<Schemas['CallsQueued']> {
    const name = handle.functionName;
    if (!name)
      throw new TypeError(`this function of app "${this.name}" has no name yet: export it, or pass { name }`);
    for (const [i, args] of inputs.entries())
      assertWireSafe(args, inputs.length === 1 ? 'arguments' : `inputs[${i}]`);
    return this.client().api('post', '/v1/apps/{name}/functions/{fn}/calls', {
      params: { name: this.name, fn: name },
      body: { inputs: inputs as unknown[][], ...(waitMs === undefined ? {} : { waitMs }) },
    });
  }

  /**
   * One call, submitted and waited for in the same request (`waitMs`): a quick function's `remote` is one round trip.
   * A call still running when that wait ends is waited for as `spawn(...).get()` does.
   */
  private async callAndWait<R>(handle: { functionName: string | undefined }, args: unknown[]): Promise<R> {
    const client = this.client();
    let answer: Schemas['CallsQueued'];
    try {
      answer = await this.submitCalls(handle, [args], REMOTE_WAIT_MS);
    } catch (error) {
      // A broker from before `waitMs` on submit: submit, then wait.
      if (!(error instanceof BrokerApiError) || error.status !== 400 || error.field !== 'waitMs') throw error;
      answer = await this.submitCalls(handle, [args]);
    }
    const id = answer.callIds[0] as string;
    const view = answer.calls?.find((call) => call.id === id);
    const outcome = view && outcomeOf<R>(view);
    if (outcome) return outcome.value;
    return new FunctionCall<R>(id, client).get();
  }

  private client(): ApiClient {
    this.broker ??= new ApiClient();
    return this.broker;
  }

  private async *mapInputs<T, A extends unknown[], R>(
    handle: { functionName: string | undefined },
    inputs: Iterable<T> | AsyncIterable<T>,
    toArgs: (input: T) => A,
    options: MapOptions = {},
  ): AsyncGenerator<R> {
    const window = options.window ?? 1000;
    const ordered = options.orderOutputs !== false;
    const iterator = (
      Symbol.asyncIterator in inputs ? inputs[Symbol.asyncIterator]() : inputs[Symbol.iterator]()
    ) as AsyncIterator<T> | Iterator<T>;
    let exhausted = false;
    let submitted = 0;
    let yielded = 0;
    const waiting = new Map<string, number>(); // call id → input index
    const done = new Map<number, CallView>();
    // The window is refilled once a quarter of it is free (or nothing is in flight), not after every result: each
    // refill is a request, and refilling result by result sent a map of 10,000 quick inputs as ~850 submits.
    const refillAt = Math.max(1, Math.min(BATCH, Math.floor(window / 4)));
    try {
      for (;;) {
        // Submit up to the window, in batches.
        const refill = waiting.size === 0 || window - (submitted - yielded) >= refillAt;
        while (refill && !exhausted && submitted - yielded < window) {
          const batch: A[] = [];
          while (batch.length < BATCH && submitted + batch.length - yielded < window) {
            const next = await iterator.next();
            if (next.done) {
              exhausted = true;
              break;
            }
            batch.push(toArgs(next.value));
          }
          if (batch.length === 0) break;
          const ids = await this.submit(handle, batch);
          for (const [i, id] of ids.entries()) waiting.set(id, submitted + i);
          submitted += batch.length;
        }
        if (waiting.size === 0 && done.size === 0) return;
        if (waiting.size > 0) {
          const answer = await this.client().api('post', '/v1/calls/wait', {
            body: { callIds: [...waiting.keys()], waitMs: 10_000 },
          });
          for (const view of answer.calls) {
            const index = waiting.get(view.id);
            if (index === undefined || view.status === 'pending' || view.status === 'running') continue;
            waiting.delete(view.id);
            done.set(index, view);
          }
        }
        // Yield what can be yielded.
        for (;;) {
          let index: number | undefined;
          if (ordered) index = done.has(yielded) ? yielded : undefined;
          else index = done.keys().next().value;
          if (index === undefined) break;
          const view = done.get(index) as CallView;
          done.delete(index);
          yielded++;
          if (view.status === 'succeeded') yield view.value as R;
          else if (options.returnExceptions) yield failure(view) as unknown as R;
          else throw failure(view);
        }
      }
    } finally {
      // Abandoned (break, error): cancel what is still running.
      await Promise.all(
        [...waiting.keys()].map((id) =>
          this.client()
            .api('delete', '/v1/calls/{id}', { params: { id } })
            .catch(() => {}),
        ),
      );
      await (iterator as AsyncIterator<T>).return?.();
    }
  }
}

export function isFunctionHandle(value: unknown): value is FunctionHandle<unknown[], unknown> {
  return typeof value === 'function' && (value as unknown as Record<symbol, unknown>)[HANDLE] === true;
}

/** A finished call's value; its RemoteFunctionError thrown when it failed or was cancelled; undefined while it runs. */
function outcomeOf<R>(view: CallView): { value: R } | undefined {
  if (view.status === 'succeeded') return { value: view.value as R };
  if (view.status === 'failed' || view.status === 'cancelled') throw failure(view);
  return undefined;
}

function failure(view: CallView): RemoteFunctionError {
  if (view.status === 'cancelled')
    return new RemoteFunctionError('the call was cancelled', undefined, undefined, view.id);
  return new RemoteFunctionError(
    view.error?.message ?? 'the call failed',
    view.error?.stack,
    view.error?.name,
    view.id,
  );
}
