/**
 * `lease shell`: an exec with a tty (remote-exec.ts) that a client types into. Its output streams on the request
 * that opened it; the keystrokes and resizes come on short requests of their own, naming the session by an id that
 * only the opening request's answer carries (and only for the lease's tenant or an operator, the lease's checks
 * come first). A session ends with its command; the broker that opened it (the leader) holds it.
 */
import { randomBytes } from 'node:crypto';
import type { RemoteExec } from './remote-exec.ts';

export class ShellSessions {
  private readonly sessions = new Map<string, { readonly leaseId: string; readonly exec: RemoteExec }>();

  /** Registers the shell of `leaseId` until its exec is done; its session id, 144 random bits. */
  open(leaseId: string, exec: RemoteExec): string {
    const id = `sh_${randomBytes(18).toString('base64url')}`;
    this.sessions.set(id, { leaseId, exec });
    void exec.done.then(() => this.sessions.delete(id));
    return id;
  }

  /** The running shell of that session, if it is one of that lease's. */
  find(leaseId: string, sessionId: string): RemoteExec | undefined {
    const session = this.sessions.get(sessionId);
    return session?.leaseId === leaseId ? session.exec : undefined;
  }
}
