/**
 * The console reads the broker through its own HTTP API, in process: the same routes, authentication, tenant
 * scoping and wire types as the SDK and the CLI (one contract), without a socket. A tenant's console therefore
 * shows exactly what that tenant's token may read.
 */
import type { Answer, PathOf, RequestArgs } from '../../sdk/wire.ts';
import { requestPath } from '../../sdk/wire.ts';

export type Fetch = (request: Request) => Response | Promise<Response>;

/** An API answer that was not a success, with its problem+json detail. */
export class ConsoleApiError extends Error {
  constructor(
    readonly status: number,
    detail: string,
  ) {
    super(detail);
    this.name = 'ConsoleApiError';
  }
}

export class ConsoleApi {
  constructor(
    private readonly fetch: Fetch,
    private readonly token: string,
  ) {}

  async get<P extends PathOf<'get'>>(path: P, ...[parts]: RequestArgs<'get', P>): Promise<Answer<'get', P>> {
    const target = requestPath(
      path,
      parts?.params as Record<string, string> | undefined,
      parts?.query as Record<string, unknown> | undefined,
    );
    const response = await this.fetch(
      new Request(`http://console.internal${target}`, { headers: { authorization: `Bearer ${this.token}` } }),
    );
    const text = await response.text();
    if (!response.ok) {
      let detail = text;
      try {
        detail = (JSON.parse(text) as { detail?: string }).detail ?? text;
      } catch {}
      throw new ConsoleApiError(response.status, detail);
    }
    return JSON.parse(text) as Answer<'get', P>;
  }
}
