import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Attempt, type InputResult, retryDecision } from './call-ledger.ts';
import { ContainerExitedError, InputNotStartedError, RemoteError } from './executor/executor.ts';

const attempt = (result: InputResult, over: Partial<Omit<Attempt, 'result'>> = {}): Attempt => ({
  result,
  attempts: 1,
  unstarted: 0,
  retries: 0,
  retired: false,
  ...over,
});
const died = (reason = 'crashed (exit 1)') =>
  ({ ok: false, error: new ContainerExitedError('ctr_1', reason) }) as const;
const notStarted = () => ({ ok: false, error: new InputNotStartedError('ctr_1', 'stopped') }) as const;

/** Attempts so far, of which some never started, against a function's `retries`. */
const counts = fc
  .record({
    attempts: fc.integer({ min: 1, max: 20 }),
    unstartedShare: fc.integer({ min: 0, max: 20 }),
    retries: fc.integer({ min: 0, max: 10 }),
  })
  .map(({ attempts, unstartedShare, retries }) => ({
    attempts,
    unstarted: Math.min(unstartedShare, attempts - 1),
    retries,
  }));

describe('retryDecision', () => {
  it('passes a value on whatever the attempt count or the function state', () => {
    fc.assert(
      fc.property(counts, fc.boolean(), fc.anything(), (c, retired, value) => {
        expect(retryDecision(attempt({ ok: true, value }, { ...c, retired }))).toEqual({
          kind: 'succeed',
          value,
        });
      }),
    );
  });

  it("fails at once on the function's own exception, with its remote name, message and stack", () => {
    const error = new RemoteError('bad input', 'at square (app.ts:3)', 'TypeError');
    expect(retryDecision(attempt({ ok: false, error }, { retries: 5 }))).toEqual({
      kind: 'fail',
      error: { name: 'TypeError', message: 'bad input', stack: 'at square (app.ts:3)' },
    });
    const bare = new RemoteError('bad input', undefined);
    expect(retryDecision(attempt({ ok: false, error: bare }))).toEqual({
      kind: 'fail',
      error: { name: 'Error', message: 'bad input' },
    });
  });

  it('runs an input that never started again whatever `retries` says, without counting it', () => {
    fc.assert(
      fc.property(counts, (c) => {
        expect(retryDecision(attempt(notStarted(), c))).toEqual({ kind: 'retry', counted: false });
      }),
    );
  });

  it('runs an input whose container died again exactly while started attempts stay within `retries` + 1', () => {
    fc.assert(
      fc.property(counts, (c) => {
        const decision = retryDecision(attempt(died(), c));
        if (c.attempts - c.unstarted <= c.retries) expect(decision).toEqual({ kind: 'retry', counted: true });
        else expect(decision.kind).toBe('fail');
      }),
    );
  });

  it('runs nothing again for a retired function', () => {
    fc.assert(
      fc.property(counts, fc.constantFrom(died(), notStarted()), (c, result) => {
        expect(retryDecision(attempt(result, { ...c, retired: true })).kind).toBe('fail');
      }),
    );
  });

  it('names the attempts when a container death fails a call tried more than once', () => {
    expect(retryDecision(attempt(died('killed: input timed out'), { attempts: 3, retries: 2 }))).toEqual({
      kind: 'fail',
      error: {
        name: 'ContainerExitedError',
        message: 'container ctr_1 exited: killed: input timed out (after 3 attempts)',
      },
    });
    expect(retryDecision(attempt(died(), { attempts: 1, retries: 0 }))).toEqual({
      kind: 'fail',
      error: { name: 'ContainerExitedError', message: 'container ctr_1 exited: crashed (exit 1)' },
    });
  });

  it('fails on any other error with its name and message, and on a thrown non-error with its text', () => {
    expect(
      retryDecision(attempt({ ok: false, error: new TypeError('handle closed') }, { retries: 3 })),
    ).toEqual({
      kind: 'fail',
      error: { name: 'TypeError', message: 'handle closed' },
    });
    expect(retryDecision(attempt({ ok: false, error: 'socket hang up' }, { retries: 3 }))).toEqual({
      kind: 'fail',
      error: { name: 'Error', message: 'socket hang up' },
    });
  });
});
