/**
 * `lease exec`: one command on the machine of a lease, run by its agent with `CUDA_VISIBLE_DEVICES` set to exactly
 * the leased GPUs; its output comes back as it is written, then its exit. The command ends with the agent: when
 * the agent is lost, the exec fails with that reason. With `tty` (`lease shell`) the command runs under a
 * pseudo-terminal of that size: `input` types into it and `resize` changes its size.
 */
import { randomBytes } from 'node:crypto';
import type { AgentMessage } from '../../agent/protocol.ts';
import type { AgentHub, ReportSink } from './agent-hub.ts';

export type ExecEvent =
  | { readonly stream: 'stdout' | 'stderr'; readonly data: Buffer }
  | {
      readonly exit: {
        readonly code: number | null;
        readonly signal: string | null;
        readonly error?: string;
      };
    };

export interface RemoteExec {
  readonly execId: string;
  /** Resolves with the exit (also delivered as the last event). */
  readonly done: Promise<Extract<ExecEvent, { exit: unknown }>['exit']>;
  /** Sends a signal to the command (SIGKILL when the client went away). */
  kill(signal?: string): void;
  /** An exec with a tty: bytes typed into its terminal, in order; `eof` then closes its input. */
  input(data: Buffer, eof?: boolean): void;
  /** An exec with a tty: its terminal's new size. */
  resize(size: TerminalSize): void;
}

export interface TerminalSize {
  readonly cols: number;
  readonly rows: number;
}

export function execOnAgent(
  hub: AgentHub,
  instanceId: string,
  order: {
    command: string;
    args: readonly string[];
    gpuIndices: readonly number[];
    env: Record<string, string>;
    tty?: TerminalSize;
  },
  onEvent: (event: ExecEvent) => void,
): RemoteExec {
  const execId = `exec_${randomBytes(9).toString('base64url')}`;
  let finish!: (exit: Extract<ExecEvent, { exit: unknown }>['exit']) => void;
  const done = new Promise<Extract<ExecEvent, { exit: unknown }>['exit']>((resolve) => {
    finish = resolve;
  });
  let ended = false;
  const end = (exit: Extract<ExecEvent, { exit: unknown }>['exit']) => {
    if (ended) return;
    ended = true;
    hub.untrackExec(execId);
    onEvent({ exit });
    finish(exit);
  };
  const sink: ReportSink = {
    instanceId,
    report(message: AgentMessage) {
      if (message.type === 'exec-output')
        onEvent({ stream: message.stream, data: Buffer.from(message.data, 'base64') });
      else if (message.type === 'exec-exit')
        end({
          code: message.code,
          signal: message.signal,
          ...(message.error ? { error: message.error } : {}),
        });
    },
    lost(reason) {
      end({ code: null, signal: null, error: reason });
    },
  };
  hub.trackExec(execId, sink);
  const sent = hub.send(instanceId, {
    type: 'exec',
    execId,
    command: order.command,
    args: [...order.args],
    gpuIndices: [...order.gpuIndices],
    env: order.env,
    ...(order.tty ? { tty: { cols: order.tty.cols, rows: order.tty.rows } } : {}),
  });
  if (!sent) end({ code: null, signal: null, error: `the agent of instance ${instanceId} is not connected` });
  return {
    execId,
    done,
    kill(signal = 'SIGKILL') {
      if (!ended) hub.send(instanceId, { type: 'exec-kill', execId, signal });
    },
    input(data, eof = false) {
      if (!ended)
        hub.send(instanceId, {
          type: 'exec-stdin',
          execId,
          data: data.toString('base64'),
          ...(eof ? { eof: true } : {}),
        });
    },
    resize(size) {
      if (!ended) hub.send(instanceId, { type: 'exec-resize', execId, cols: size.cols, rows: size.rows });
    },
  };
}
