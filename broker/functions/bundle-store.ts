/**
 * Bundles: the ES modules `gpubroker run|deploy` uploads, stored by the SHA-256 of their bytes (the same code is
 * the same id, so a re-run with unchanged code uploads nothing) under the tenant that uploaded them: a container
 * only ever loads its own tenant's code.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ValidationError } from '../../lib/errors.ts';

/** Largest bundle accepted. */
export const MAX_BUNDLE_BYTES = 32 * 1024 * 1024;

export function bundleIdOf(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class BundleStore {
  constructor(private readonly root: string) {
    mkdirSync(root, { recursive: true });
  }

  pathOf(tenantId: string, bundleId: string): string {
    if (!/^[0-9a-f]{64}$/.test(bundleId)) throw new ValidationError('bundleId', 'must be a SHA-256 in hex');
    if (!/^[A-Za-z0-9_-]+$/.test(tenantId)) throw new ValidationError('tenant', 'unexpected tenant id');
    return join(this.root, tenantId, `${bundleId}.mjs`);
  }

  has(tenantId: string, bundleId: string): boolean {
    return existsSync(this.pathOf(tenantId, bundleId));
  }

  read(tenantId: string, bundleId: string): Promise<Buffer> {
    return readFile(this.pathOf(tenantId, bundleId));
  }

  /** Stores a bundle whose bytes hash to `bundleId`; returns whether it was new. */
  put(tenantId: string, bundleId: string, bytes: Uint8Array): boolean {
    const path = this.pathOf(tenantId, bundleId);
    if (bytes.byteLength > MAX_BUNDLE_BYTES)
      throw new ValidationError('body', `a bundle may have at most ${MAX_BUNDLE_BYTES} bytes`);
    const actual = bundleIdOf(bytes);
    if (actual !== bundleId)
      throw new ValidationError('bundleId', `the body hashes to ${actual}, not to the id in the path`);
    if (existsSync(path)) return false;
    mkdirSync(join(this.root, tenantId), { recursive: true });
    // Written whole, then renamed: a container never loads half a bundle.
    const temporary = `${path}.${process.pid}.tmp`;
    writeFileSync(temporary, bytes);
    renameSync(temporary, path);
    return true;
  }
}
