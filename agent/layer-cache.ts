/**
 * Image layers on the agent's disk: each fetched once from the broker (`GET /v1/agent/layers/{tenant}/{id}`), its
 * tarball's SHA-256 checked, unpacked into `<root>/<sha256>/node_modules` and shared read-only by every container
 * (and every simulated instance of an agent host) whose image uses it. Keyed by the tarball's hash: the same bytes
 * are one directory whoever uploaded them. A layer whose bytes do not hash to the order's SHA-256 is never unpacked.
 *
 * Unpacking (node-tar) keeps every entry inside the layer's directory: absolute paths and `..` are refused, nothing is
 * written through a link, and only files, directories and symbolic links are made (no devices, no fifos), owned by
 * the agent, readable by all.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface LayerRef {
  readonly tenantId: string;
  /** The recipe's hash: the broker's name of the layer. */
  readonly id: string;
  /** The tarball's SHA-256. */
  readonly sha256: string;
}

export class LayerCache {
  private readonly fetching = new Map<string, Promise<string>>();

  constructor(private readonly root: string) {
    mkdirSync(root, { recursive: true, mode: 0o755 });
  }

  /** The local `node_modules` of the layer, fetched with `token` and unpacked when absent. */
  async nodeModulesOf(ref: LayerRef, brokerUrl: string, token: string): Promise<string> {
    if (!/^[0-9a-f]{64}$/.test(ref.sha256) || !/^[0-9a-f]{64}$/.test(ref.id))
      throw new Error(`bad layer ${ref.id}/${ref.sha256}`);
    const dir = join(this.root, ref.sha256);
    if (existsSync(dir)) return join(dir, 'node_modules');
    let pending = this.fetching.get(ref.sha256);
    if (!pending) {
      pending = this.download(ref, brokerUrl, token, dir).finally(() => this.fetching.delete(ref.sha256));
      this.fetching.set(ref.sha256, pending);
    }
    return pending;
  }

  private async download(ref: LayerRef, brokerUrl: string, token: string, dir: string): Promise<string> {
    const url = `${brokerUrl}/v1/agent/layers/${encodeURIComponent(ref.tenantId)}/${ref.id}`;
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(10 * 60_000),
    });
    if (!response.ok || !response.body)
      throw new Error(`layer ${ref.id}: the broker answered ${response.status}`);
    const stamp = `${process.pid}.${Math.floor(performance.now())}`;
    const tarball = join(this.root, `${ref.sha256}.${stamp}.tgz`);
    const unpacked = join(this.root, `${ref.sha256}.${stamp}.tmp`);
    try {
      const hash = createHash('sha256');
      const body = Readable.fromWeb(response.body as never);
      body.on('data', (chunk: Buffer) => hash.update(chunk));
      await pipeline(body, createWriteStream(tarball));
      const actual = hash.digest('hex');
      if (actual !== ref.sha256)
        throw new Error(`layer ${ref.id}: the bytes received hash to ${actual}; not kept`);
      mkdirSync(unpacked, { mode: 0o755 });
      // Loaded when a layer first arrives: most agents never unpack one, and node-tar is ~40 modules of idle memory.
      const { x: extract } = await import('tar');
      await extract({
        file: tarball,
        cwd: unpacked,
        strict: true,
        preservePaths: false,
        preserveOwner: false,
        // The archive's modes, but writable by nobody but the agent (the containers' users only read and run).
        umask: 0o022,
        filter: (_path, entry) => {
          const type = 'type' in entry ? entry.type : undefined;
          return type === 'File' || type === 'Directory' || type === 'SymbolicLink' || type === 'OldFile';
        },
      });
      if (!existsSync(join(unpacked, 'node_modules')))
        throw new Error(`layer ${ref.id}: the tarball has no node_modules directory`);
      await rename(unpacked, dir);
      return join(dir, 'node_modules');
    } finally {
      await rm(tarball, { force: true });
      await rm(unpacked, { recursive: true, force: true });
    }
  }
}
