/**
 * Bundles on the agent's disk, by content: fetched once from the broker (`GET /v1/agent/bundles/{tenant}/{sha}`),
 * their SHA-256 checked before they are kept, and shared by every container (and every simulated instance of an
 * agent host) that runs the same code. A bundle whose bytes do not hash to its name is never written.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface BundleRef {
  readonly tenantId: string;
  readonly sha256: string;
}

export class BundleCache {
  private readonly fetching = new Map<string, Promise<string>>();

  constructor(private readonly root: string) {
    mkdirSync(root, { recursive: true });
  }

  /** The local path of the bundle, fetched with `token` when absent. Rejects with a message naming the hash. */
  async pathOf(ref: BundleRef, brokerUrl: string, token: string): Promise<string> {
    if (!/^[0-9a-f]{64}$/.test(ref.sha256)) throw new Error(`bad bundle hash ${ref.sha256}`);
    const path = join(this.root, `${ref.sha256}.mjs`);
    if (existsSync(path)) return path;
    let pending = this.fetching.get(ref.sha256);
    if (!pending) {
      pending = this.download(ref, brokerUrl, token, path).finally(() => this.fetching.delete(ref.sha256));
      this.fetching.set(ref.sha256, pending);
    }
    return pending;
  }

  private async download(ref: BundleRef, brokerUrl: string, token: string, path: string): Promise<string> {
    const url = `${brokerUrl}/v1/agent/bundles/${encodeURIComponent(ref.tenantId)}/${ref.sha256}`;
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(60_000),
    });
    if (!response.ok) throw new Error(`bundle ${ref.sha256}: the broker answered ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== ref.sha256)
      throw new Error(`bundle ${ref.sha256}: the bytes received hash to ${actual}; not kept`);
    const temporary = `${path}.${process.pid}.${Math.floor(performance.now())}.tmp`;
    await writeFile(temporary, bytes);
    await rename(temporary, path);
    return path;
  }
}
