import { createHash } from 'node:crypto';

/**
 * The RunInstances ClientToken for a provision key. EC2 takes at most 64 ASCII characters and keeps a token per
 * account and region, so the token is a SHA-256 (64 hex digits) of the broker id and the key: the same key always
 * gives the same token, and two brokers sharing an account never collide.
 */
export function clientToken(brokerId: string, idempotencyKey: string): string {
  return createHash('sha256').update(`${brokerId}\n${idempotencyKey}`).digest('hex');
}
