/**
 * Requests that Node's HTTP parser rejects before Hono sees them (a URL or headers over 16 KB, a malformed request
 * line) get a problem+json answer like every other error, instead of Node's bare status line.
 */

import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { HttpProblem, problemFor } from './problem.ts';

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

export function answerMalformedRequests(server: Server): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || (socket as Socket & { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
      return;
    }
    const [status, detail] =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'the request line and headers exceed 16 KB; send long input in a JSON body']
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'the request was not received in time']
          : [400, 'the request is not valid HTTP/1.1'];
    const body = JSON.stringify(
      problemFor(
        new HttpProblem(status, REASONS[status] ?? 'Bad Request', detail, status === 431 ? 'url' : 'request'),
      ),
    );
    socket.end(
      `HTTP/1.1 ${status} ${REASONS[status]}\r\nContent-Type: application/problem+json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
