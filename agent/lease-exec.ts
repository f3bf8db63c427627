/**
 * `lease exec` on the agent's side: the tenant's command with exactly the leased GPUs visible. On an isolating agent
 * it runs in the same sandbox as a container (`executor/sandbox/bubblewrap.ts`): its own namespaces and user, only
 * the leased GPUs' device nodes, a read-only root and a scratch directory, and a cgroup holding the lease's share
 * of the machine (CPU and memory in proportion to its GPUs of the machine's). A lease is a tenant's, the machine is
 * shared: nothing of the agent or the host is reachable from a command either.
 *
 * `lease shell` is the same exec with a tty: the command runs under a pseudo-terminal that util-linux `script`
 * allocates (`script -qfec CMD /dev/null`, no native module), inside the sandbox like any command. Its input comes
 * from the agent through `script`'s stdin, and its output (the terminal's, one stream) leaves on `script`'s stdout.
 * The window size is set with `stty cols C rows R` in the terminal before the command starts; a resize is a line
 * `C R` written to a FIFO in the command's scratch directory, which a small loop in the terminal's session
 * (started before the command, blind to Ctrl-C and Ctrl-Z, gone with the session's hang-up) applies with the same
 * `stty`: the kernel then sends SIGWINCH to the foreground processes, as for a local terminal.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chownSync,
  closeSync,
  existsSync,
  constants as fsConstants,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import { type BubblewrapSandbox, SANDBOX_PATHS, type SandboxLaunch } from './executor/sandbox/bubblewrap.ts';

export interface ExecOrder {
  readonly execId: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly gpuIndices: readonly number[];
  readonly env: Readonly<Record<string, string>>;
  /** Run under a pseudo-terminal of this size (`lease shell`). */
  readonly tty?: TerminalSize;
}

export interface TerminalSize {
  readonly cols: number;
  readonly rows: number;
}

export interface ExecSetting {
  readonly sandbox?: BubblewrapSandbox;
  /** Where sandboxed commands get their scratch directories. */
  readonly workRoot: string;
  /** The machine's GPU count, for the lease's share of CPU and memory. */
  readonly machineGpus: number;
}

export interface RunningExec {
  readonly child: ChildProcess;
  /** Signals the command (every process of its sandbox). */
  kill(signal: NodeJS.Signals): void;
  /** Removes its sandbox and scratch directory, once it has exited. */
  cleanUp(): Promise<void>;
  /** An exec with a tty: its terminal's input and size. */
  readonly terminal?: Terminal;
}

export interface Terminal {
  /** Bytes typed into the terminal, in order. */
  write(data: Buffer): void;
  /** Closes the terminal's input: the command reads end of file (a shell exits). */
  end(): void;
  resize(size: TerminalSize): void;
}

/** The FIFO a terminal's resizes go through, in the command's directory. */
const WINSIZE_FIFO = '.gpubroker-winsize';

/** Starts the command; throws (synchronously) if it cannot be set up. */
export function startExec(order: ExecOrder, setting: ExecSetting): RunningExec {
  const env = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: setting.sandbox ? SANDBOX_PATHS.scratch : (process.env.HOME ?? '/'),
    ...(order.tty ? { TERM: 'xterm-256color' } : {}),
    ...order.env,
    CUDA_VISIBLE_DEVICES: order.gpuIndices.join(','),
  };
  const stdin = order.tty ? 'pipe' : 'ignore';
  const id = `exec_${order.execId.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
  mkdirSync(setting.workRoot, { recursive: true });
  if (!setting.sandbox) {
    if (!order.tty) {
      const child = spawn(order.command, [...order.args], { env, stdio: [stdin, 'pipe', 'pipe'] });
      return { child, kill: (signal) => child.kill(signal), cleanUp: async () => {} };
    }
    const fifoDir = mkdtempSync(join(setting.workRoot, `${id}-`));
    let pty: PtyCommand;
    try {
      pty = ptyCommand(order, order.tty, fifoDir, join(fifoDir, WINSIZE_FIFO));
    } catch (error) {
      rmSync(fifoDir, { recursive: true, force: true });
      throw error;
    }
    const child = spawn(pty.argv[0] as string, pty.argv.slice(1), { env, stdio: [stdin, 'pipe', 'pipe'] });
    return {
      child,
      kill: (signal) => child.kill(signal),
      cleanUp: async () => {
        pty.close();
        rmSync(fifoDir, { recursive: true, force: true });
      },
      terminal: terminalOf(child, pty),
    };
  }
  const workDir = join(setting.workRoot, id);
  mkdirSync(workDir, { mode: 0o700 });
  const share = Math.min(1, order.gpuIndices.length / Math.max(1, setting.machineGpus));
  let launch: SandboxLaunch;
  let pty: PtyCommand | undefined;
  try {
    pty = order.tty
      ? ptyCommand(order, order.tty, workDir, `${SANDBOX_PATHS.scratch}/${WINSIZE_FIFO}`)
      : undefined;
    launch = setting.sandbox.launch({
      id,
      gpuIndices: order.gpuIndices,
      cpu: Math.max(1, Math.floor(availableParallelism() * share)),
      memoryMiB: Math.max(256, Math.floor((totalmem() / 1024 / 1024) * share)),
      network: 'egress',
      workDir,
      env,
      argv: pty?.argv ?? [order.command, ...order.args],
    });
    chownSync(workDir, launch.uid, launch.uid);
    if (pty) chownSync(join(workDir, WINSIZE_FIFO), launch.uid, launch.uid);
  } catch (error) {
    pty?.close();
    rmSync(workDir, { recursive: true, force: true });
    throw error;
  }
  const child = spawn(launch.command, launch.args, {
    cwd: workDir,
    env: launch.env,
    stdio: [stdin, 'pipe', 'pipe'],
    detached: true,
  });
  return {
    child,
    kill: (signal) => launch.cgroup.signalAll(signal),
    cleanUp: async () => {
      pty?.close();
      await launch.release().catch(() => undefined);
      rmSync(workDir, { recursive: true, force: true });
    },
    ...(pty ? { terminal: terminalOf(child, pty) } : {}),
  };
}

interface PtyCommand {
  /** `script` running the command under a pseudo-terminal. */
  readonly argv: readonly string[];
  /** Sets the terminal's size (a line on the FIFO). */
  resize(size: TerminalSize): void;
  /** Closes the agent's end of the FIFO. */
  close(): void;
}

/**
 * The command under `script`, and the FIFO of its resizes made in `dir` (`fifoInside`: its path as the command
 * sees it). The terminal's session runs, in order: `stty` to the size asked for; the resize loop in the background
 * (with the terminal as fd 3, its stdin being /dev/null); the command.
 */
function ptyCommand(order: ExecOrder, size: TerminalSize, dir: string, fifoInside: string): PtyCommand {
  const script = onPath('script');
  if (!script)
    throw new Error(
      "lease shell needs util-linux's script for a pseudo-terminal on the machine: apt-get install bsdutils",
    );
  const fifo = join(dir, WINSIZE_FIFO);
  const made = spawnSync('mkfifo', ['-m', '0600', fifo], { encoding: 'utf8' });
  if (made.status !== 0)
    throw new Error(`mkfifo failed: ${(made.stderr || made.error?.message || '').trim()}`);
  // Read and write, so that opening never waits for the loop, and non-blocking: a full FIFO drops a resize.
  const fd = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
  const session = [
    `stty cols ${size.cols} rows ${size.rows} 2>/dev/null`,
    'exec 3<&0',
    `(trap '' INT QUIT TSTP; while read -r c r; do stty cols "$c" rows "$r" <&3; done <${quote(fifoInside)}) >/dev/null 2>&1 &`,
    'exec 3<&-',
    `exec ${[order.command, ...order.args].map(quote).join(' ')}`,
  ].join('\n');
  let open = true;
  return {
    argv: [script, '-qfec', session, '/dev/null'],
    resize(next) {
      if (!open) return;
      try {
        writeSync(fd, `${next.cols} ${next.rows}\n`);
      } catch {
        // A full FIFO: the loop is gone or stuck; this resize is dropped.
      }
    },
    close() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}

function terminalOf(child: ChildProcess, pty: PtyCommand): Terminal {
  // Writes after the command exited (its input closed) are dropped, as keystrokes into a closed terminal are.
  child.stdin?.on('error', () => undefined);
  return {
    write: (data) => void child.stdin?.write(data),
    end: () => void child.stdin?.end(),
    resize: (size) => pty.resize(size),
  };
}

/** A single-quoted word for sh. */
function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

function onPath(command: string): string | undefined {
  const dirs = (process.env.PATH ?? '/usr/bin:/bin').split(delimiter);
  for (const dir of [...dirs, '/usr/bin', '/bin']) {
    const candidate = join(dir, command);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}
