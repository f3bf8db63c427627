/**
 * Image layers: gzip tarballs of `node_modules` that `gpubroker run|deploy` builds from an image's npm packages and
 * uploads once, under the tenant that uploaded them. A layer is named by the hash of its recipe (base, packages,
 * platform), so a client asks for it before building anything: an unchanged list is never built again. Its bytes
 * have their own SHA-256, kept beside it, which agents check before they unpack it.
 *
 * Uploads are streamed to disk (layers are large), hashed on the way, and renamed into place whole.
 */
import { createHash } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ValidationError } from '../../lib/errors.ts';

/** Largest layer accepted. */
export const MAX_LAYER_BYTES = 512 * 1024 * 1024;

export interface LayerInfo {
  readonly id: string;
  /** SHA-256 of the tarball's bytes. */
  readonly sha256: string;
  readonly bytes: number;
}

export class LayerStore {
  constructor(private readonly root: string) {
    mkdirSync(root, { recursive: true });
  }

  private pathOf(tenantId: string, id: string): string {
    if (!/^[0-9a-f]{64}$/.test(id)) throw new ValidationError('id', 'must be a SHA-256 in hex');
    if (!/^[A-Za-z0-9_-]+$/.test(tenantId)) throw new ValidationError('tenant', 'unexpected tenant id');
    return join(this.root, tenantId, `${id}.tgz`);
  }

  /** The layer, when the tenant uploaded it. */
  info(tenantId: string, id: string): LayerInfo | undefined {
    const path = this.pathOf(tenantId, id);
    if (!existsSync(path)) return undefined;
    return { id, sha256: readFileSync(`${path}.sha256`, 'utf8').trim(), bytes: statSync(path).size };
  }

  /** Its bytes, as a stream (for agents). */
  read(tenantId: string, id: string): Readable {
    return createReadStream(this.pathOf(tenantId, id));
  }

  /**
   * Stores the tarball `body` under `id` unless the tenant has that layer already (then the body is not read);
   * returns the layer and whether it was new. Refuses a body that is not gzip or is larger than MAX_LAYER_BYTES.
   */
  async put(
    tenantId: string,
    id: string,
    body: ReadableStream<Uint8Array> | null,
  ): Promise<{ layer: LayerInfo; created: boolean }> {
    const path = this.pathOf(tenantId, id);
    const known = this.info(tenantId, id);
    if (known) return { layer: known, created: false };
    if (!body) throw new ValidationError('body', 'the layer tarball (gzip) is missing');
    mkdirSync(join(this.root, tenantId), { recursive: true });
    const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
    const hash = createHash('sha256');
    const file = createWriteStream(temporary);
    let bytes = 0;
    try {
      for await (const chunk of Readable.fromWeb(body as never) as AsyncIterable<Buffer>) {
        if (bytes === 0 && (chunk[0] !== 0x1f || chunk[1] !== 0x8b))
          throw new ValidationError('body', 'a layer is a gzip tarball');
        bytes += chunk.byteLength;
        if (bytes > MAX_LAYER_BYTES)
          throw new ValidationError('body', `a layer may have at most ${MAX_LAYER_BYTES} bytes`);
        hash.update(chunk);
        if (!file.write(chunk)) await new Promise<void>((resolve) => file.once('drain', () => resolve()));
      }
      if (bytes === 0) throw new ValidationError('body', 'the layer tarball (gzip) is empty');
      await new Promise<void>((resolve, reject) => {
        file.once('error', reject);
        file.end(() => resolve());
      });
    } catch (error) {
      file.destroy();
      rmSync(temporary, { force: true });
      throw error;
    }
    const sha256 = hash.digest('hex');
    // The hash first: a layer file is never without it.
    writeFileSync(`${path}.sha256`, `${sha256}\n`);
    renameSync(temporary, path);
    return { layer: { id, sha256, bytes }, created: true };
  }
}
