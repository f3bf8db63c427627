/**
 * Sending a case over real HTTP on 127.0.0.1: `fetch` for what it can send, a `node:net` socket for the rest
 * (written as is, half-closed, and every answer on the connection parsed back, so pipelined and smuggled requests
 * show each of their answers).
 */
import { connect } from 'node:net';
import type { Case } from './cases.ts';

export interface Answer {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly body: string;
}

export interface Outcome {
  /** Every answer on the connection (one for fetch; none when the server closed without a word). */
  readonly answers: readonly Answer[];
  readonly ms: number;
  /** The server neither answered nor closed in time, or the connection failed. */
  readonly error: string | undefined;
}

export async function send(baseUrl: string, c: Case, timeoutMs: number): Promise<Outcome> {
  return c.transport === 'socket'
    ? sendRaw(baseUrl, c.raw ?? Buffer.alloc(0), timeoutMs)
    : sendFetch(baseUrl, c, timeoutMs);
}

async function sendFetch(baseUrl: string, c: Case, timeoutMs: number): Promise<Outcome> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
  const started = performance.now();
  try {
    const response = await fetch(`${baseUrl}${c.target}`, {
      method: c.method,
      headers: c.headers,
      ...(c.body !== undefined ? { body: c.body } : {}),
      signal: abort.signal,
      redirect: 'manual',
    });
    const contentType = response.headers.get('content-type') ?? undefined;
    let body = '';
    if (c.stream && response.status === 200) abort.abort(new Error('stream read'));
    else body = await response.text();
    return {
      answers: [{ status: response.status, contentType, body }],
      ms: performance.now() - started,
      error: undefined,
    };
  } catch (error) {
    return { answers: [], ms: performance.now() - started, error: describe(error) };
  } finally {
    clearTimeout(timer);
  }
}

function describe(error: unknown): string {
  const e = error as Error & { cause?: Error };
  return [e.message, e.cause?.message].filter(Boolean).join(': ');
}

async function sendRaw(baseUrl: string, raw: Buffer, timeoutMs: number): Promise<Outcome> {
  const { hostname, port } = new URL(baseUrl);
  const started = performance.now();
  return new Promise<Outcome>((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const socket = connect({ host: hostname, port: Number(port) });
    const finish = (error: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const answers = parseAnswers(Buffer.concat(chunks));
      resolve({ answers, ms: performance.now() - started, error: answers.length > 0 ? undefined : error });
    };
    const timer = setTimeout(() => finish(`no answer and no close in ${timeoutMs} ms`), timeoutMs);
    socket.on('connect', () => {
      socket.write(raw);
      socket.end();
    });
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (error) => finish(error.message));
    socket.on('close', () => finish(undefined));
  });
}

/** The HTTP/1.1 answers in a byte stream (Content-Length or chunked bodies; the rest up to the close). */
export function parseAnswers(bytes: Buffer): Answer[] {
  const answers: Answer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const headEnd = bytes.indexOf('\r\n\r\n', at);
    if (headEnd < 0) break;
    const head = bytes.subarray(at, headEnd).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(head[0] ?? '')?.[1] ?? Number.NaN);
    if (!Number.isFinite(status)) break;
    const headers = new Map<string, string>();
    for (const line of head.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    let bodyStart = headEnd + 4;
    let body: Buffer;
    if (status === 100 || status === 101) {
      at = bodyStart;
      continue;
    }
    if (headers.get('transfer-encoding')?.includes('chunked')) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = bytes.indexOf('\r\n', bodyStart);
        if (lineEnd < 0) break;
        const size = Number.parseInt(bytes.subarray(bodyStart, lineEnd).toString('latin1'), 16);
        if (!Number.isFinite(size) || size === 0) {
          bodyStart = lineEnd + 4;
          break;
        }
        parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
        bodyStart = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(parts);
      at = bodyStart;
    } else if (headers.has('content-length')) {
      const length = Number(headers.get('content-length'));
      body = bytes.subarray(bodyStart, bodyStart + length);
      at = bodyStart + length;
    } else {
      body = bytes.subarray(bodyStart);
      at = bytes.length;
    }
    answers.push({ status, contentType: headers.get('content-type'), body: body.toString('utf8') });
  }
  return answers;
}
