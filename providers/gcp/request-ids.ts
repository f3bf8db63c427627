/**
 * Everything derived from an idempotency key, deterministically, so that a repeated call (same process or a
 * restarted one) sends GCE the same request: the `requestId` GCE deduplicates writes on, and the instance names.
 */
import { createHash } from 'node:crypto';
import type { ProvisionRequest } from '../provider.ts';

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * A UUID for GCE's `requestId` ("must be a valid UUID with the exception that zero UUID is not supported":
 * https://cloud.google.com/compute/docs/reference/rest/v1/instances/bulkInsert), derived from `parts` the way RFC
 * 9562 name-based UUIDs are (hash, then set the version and variant bits), with SHA-256 as the hash.
 */
export function requestIdFor(...parts: readonly string[]): string {
  const bytes = sha256(JSON.stringify(parts)).subarray(0, 16);
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Names for the instances of one provision call: `<prefix>-<hash of owner and key>-<n>`. Names are unique per zone,
 * so a repeated call can never create a second set next to the first (RFC 1035: `[a-z]([-a-z0-9]*[a-z0-9])?`, ≤ 63).
 */
export function instanceNamesFor(prefix: string, owner: string, key: string, count: number): string[] {
  const hash = sha256(JSON.stringify([owner, key]))
    .toString('hex')
    .slice(0, 16);
  return Array.from({ length: count }, (_, i) => `${prefix}-${hash}-${i}`);
}

/** What must match for a repeated key to count as the same request (as the simulated clouds compare it). */
export function fingerprintOf(request: ProvisionRequest): string {
  const tags = Object.entries(request.tags ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return sha256(JSON.stringify([request.offeringId, request.count, request.zone ?? null, tags]))
    .toString('hex')
    .slice(0, 32);
}
