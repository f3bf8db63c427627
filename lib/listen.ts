/** Binding a port, with the failures a user meets (in use, privileged, not an address here) as StartupErrors. */
import type { Server } from 'node:net';
import { StartupError } from './errors.ts';

/** Resolves once `server` (already told to listen) listens; on failure closes it and names --port or --host. */
export async function listening(
  server: Pick<Server, 'once' | 'close'>,
  host: string,
  port: number,
): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  }).catch((error: NodeJS.ErrnoException) => {
    server.close();
    if (error.code === 'EADDRINUSE')
      throw new StartupError(
        '--port',
        `${host}:${port} is already in use; stop what listens there or pick another --port`,
      );
    if (error.code === 'EACCES')
      throw new StartupError(
        '--port',
        `not allowed to listen on ${host}:${port} (ports below 1024 need privileges)`,
      );
    if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN')
      throw new StartupError('--host', `${host} is not an address of this machine`);
    throw new StartupError('--port', `cannot listen on ${host}:${port}: ${error.message}`, { cause: error });
  });
}
