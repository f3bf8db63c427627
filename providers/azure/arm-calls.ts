/**
 * How the adapter makes ARM calls through the SDK: throttling retried with exponential backoff on the Clock, no
 * jitter, never sooner than a Retry-After header asks (`withBackoff`; the SDK's own retry policy is off, so these
 * waits are the only ones), pages followed one `nextLink` at a time (a throttled page is asked for again, not the
 * whole list), and long-running operations polled on the Clock.
 * https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/request-limits-and-throttling
 */
import type { PagedAsyncIterableIterator } from '@azure/arm-compute';
import { BackoffExhausted, type BackoffPolicy, backoffDelayMs, withBackoff } from '../../lib/backoff.ts';
import type { Clock } from '../../lib/clock.ts';
import { ProviderUnavailableError, ThrottledError } from '../provider-errors.ts';
import { AZURE, armFailure, isThrottled } from './azure-errors.ts';

/**
 * The part of the SDK's PollerLike (@azure/core-lro) the adapter uses. A poller is never awaited or returned from an
 * async function: it is a thenable whose `then` polls to the end on the SDK's own timers.
 */
export interface Poller<T> {
  readonly isDone: boolean;
  readonly operationState: { readonly status: string; readonly error?: Error } | undefined;
  readonly result: T | undefined;
  submitted(): Promise<void>;
  poll(): Promise<unknown>;
  serialize(): Promise<string>;
}

/** How one long-running operation ended, as far as the adapter could see. */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T | undefined }
  | {
      readonly ok: false;
      readonly error: unknown;
      /** The initial request was accepted (something may exist in Azure). */
      readonly accepted: boolean;
      /** The operation's end was seen (it failed); false when the adapter stopped watching (timeout, outage). */
      readonly known: boolean;
    };

export class ArmCalls {
  constructor(
    private readonly clock: Clock,
    private readonly throttle: BackoffPolicy,
  ) {}

  /**
   * Runs `call`, retrying while Azure throttles; after the last retry, ThrottledError (`retried`: nobody retries it
   * again). Other errors pass through.
   */
  async retrying<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await withBackoff(
        {
          clock: this.clock,
          policy: this.throttle,
          retryable: (error) => isThrottled(armFailure(error, this.clock.now())),
          atLeastMs: (error) => armFailure(error, this.clock.now()).retryAfterMs,
        },
        call,
      );
    } catch (error) {
      if (!(error instanceof BackoffExhausted)) throw error;
      const failure = armFailure(error.last, this.clock.now());
      throw new ThrottledError(
        AZURE,
        error.retryAfterMs,
        `still throttled after ${error.attempts} attempts (${failure.code ?? 429}: ${failure.message})`,
        true,
      );
    }
  }

  /** Every item of a paged list, following `nextLink` page by page. */
  async collect<T>(open: () => PagedAsyncIterableIterator<T>): Promise<T[]> {
    const items: T[] = [];
    let token: string | undefined;
    do {
      const page = await this.retrying(() =>
        open()
          .byPage(token === undefined ? undefined : { continuationToken: token })
          .next(),
      );
      if (page.done) break;
      items.push(...page.value);
      token = page.value.continuationToken;
    } while (token);
    return items;
  }

  /**
   * Starts a long-running operation and waits for its end, polling every `intervalMs` on the Clock until `deadlineMs`.
   * A throttled or failed poll is retried from the poller's state before it (`restore`), since a poller that saw an
   * error response stays failed. Failure of the operation itself is an outcome, not an exception.
   */
  async settle<T>(
    start: () => Poller<T>,
    restore: (state: string) => Poller<T>,
    intervalMs: number,
    deadlineMs: number,
  ): Promise<Outcome<T>> {
    let holder: { poller: Poller<T> };
    try {
      holder = await this.retrying(async () => {
        const poller = start();
        await poller.submitted();
        return { poller };
      });
    } catch (error) {
      return { ok: false, error, accepted: false, known: true };
    }
    let transientFailures = 0;
    while (!holder.poller.isDone) {
      if (this.clock.now() > deadlineMs)
        return {
          ok: false,
          error: new ProviderUnavailableError(AZURE, undefined, 'the operation did not finish in time'),
          accepted: true,
          known: false,
        };
      await this.clock.sleep(intervalMs);
      const before = await holder.poller.serialize();
      try {
        await holder.poller.poll();
      } catch (error) {
        const failure = armFailure(error, this.clock.now());
        // The operation's own failure (its status resource said Failed) is final; a failed poll is not.
        if (failure.operationFailed) return { ok: false, error, accepted: true, known: true };
        if (transientFailures >= this.throttle.maxRetries)
          return { ok: false, error, accepted: true, known: false };
        transientFailures++;
        holder = { poller: restore(before) };
        if (isThrottled(failure))
          await this.clock.sleep(
            Math.max(failure.retryAfterMs ?? 0, backoffDelayMs(this.throttle, transientFailures)),
          );
      }
    }
    const state = holder.poller.operationState;
    if (state?.status === 'succeeded') return { ok: true, value: holder.poller.result };
    return {
      ok: false,
      error: state?.error ?? new Error(`operation ${state?.status}`),
      accepted: true,
      known: true,
    };
  }
}
