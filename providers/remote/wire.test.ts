import { describe, expect, it } from 'vitest';
import { ThrottledError } from '../provider-errors.ts';
import { errorFromWire, errorToWire } from './wire.ts';

describe('wire errors', () => {
  it('carries whether a throttled call was retried already, so that a remote broker does not retry it again', () => {
    const retried = errorFromWire(errorToWire(new ThrottledError('aws', 250, 'still throttled', true)));
    expect(retried).toBeInstanceOf(ThrottledError);
    expect(retried).toMatchObject({ retryAfterMs: 250, retried: true, message: 'aws: still throttled' });

    const fresh = errorToWire(new ThrottledError('aws', 500, 'request rate exceeded'));
    expect(fresh).toEqual({
      code: 'throttled',
      vendor: 'aws',
      detail: 'request rate exceeded',
      retryAfterMs: 500,
    });
    expect(errorFromWire(fresh)).toMatchObject({ retryAfterMs: 500, retried: false });
  });
});
