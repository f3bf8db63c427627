/**
 * Containers in bubblewrap (`bwrap`, Debian's `bubblewrap`). Why bubblewrap rather than crun: it takes the mounts
 * and namespaces as arguments (no OCI bundle and config to write per container), starts in a few milliseconds,
 * passes our IPC channel (fd 3) and environment through untouched, and an unpacked OCI image is just another root
 * to bind, so registry images fit later (see `layers.ts`). What bwrap does not do, limits, we do with cgroups.
 *
 * A container's process tree, and what each step is for:
 *   sh -c JOIN      root, on the host: writes its own pid into the container's cgroups, then execs (so everything
 *                   after is limited, counted and killed with the cgroup from its first instruction)
 *   bwrap …         root: new mount, PID, IPC, UTS (and with `network: 'none'`, network) namespaces; the root is an
 *                   empty tmpfs, made read-only, holding only: the host's /usr and /etc (read-only; /bin, /lib… as
 *                   their links), the node runtime, the container worker and the bundle (read-only), a fresh /dev
 *                   with only this container's GPUs' device nodes, its own /proc, a /tmp tmpfs, and /scratch, its
 *                   writable directory (also HOME and the working directory), removed after it
 *   setpriv …       drops to the container's own unprivileged user (no groups, no capabilities, empty bounding set,
 *                   no_new_privs), then execs the worker
 *   node worker     imports the bundle and serves inputs over the IPC channel
 * Nothing of the agent's files (its credential, its bundle cache, a broker's data directory) is mounted, and no
 * process outside the container is visible or can be signalled.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ContainerNetwork, ContainerSpec } from '../../../runtime/executor/executor.ts';
import { CgroupManager, type ContainerCgroup } from './cgroups.ts';
import { containerUids, type UidPool } from './uid-pool.ts';

/** Inside the container. */
export const SANDBOX_PATHS = {
  scratch: '/scratch',
  worker: '/gpubroker/executor',
  bundle: '/app/bundle.mjs',
  nodeModules: '/app/node_modules',
} as const;

/** Processes and threads one container may hold at once. */
const PIDS_MAX = 4096;
/** The devices every CUDA process needs besides its GPUs. */
const NVIDIA_CONTROL_DEVICES = [
  'nvidiactl',
  'nvidia-uvm',
  'nvidia-uvm-tools',
  'nvidia-modeset',
  'nvidia-caps',
];
/** The host's system directories, shared read-only (the image's base). */
const SYSTEM_DIRS = ['/usr', '/etc'];
const SYSTEM_LINKS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** Pids join the cgroups before anything of the container runs. */
const JOIN_SCRIPT =
  'IFS=:; for f in $GPUBROKER_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; unset IFS GPUBROKER_CGROUP_PROCS; exec "$@"';

export interface BubblewrapOptions {
  readonly bwrap: string;
  readonly setpriv: string;
  readonly cgroups: CgroupManager;
  readonly uids?: UidPool;
  /** Where the GPU device nodes are (`nvidia<N>`, `nvidiactl`…); default /dev. For tests. */
  readonly devRoot?: string;
}

/** How one container is started, and what to clean up after it. */
export interface SandboxLaunch {
  readonly command: string;
  readonly args: string[];
  readonly env: Record<string, string>;
  readonly uid: number;
  readonly cgroup: ContainerCgroup;
  /** The home and working directory inside. */
  readonly home: string;
  /** Kills what is left, removes the cgroup and frees the user id. */
  release(): Promise<void>;
}

export interface SandboxRequest {
  /** The container's (or command's) id: its cgroup's and hostname's name. */
  readonly id: string;
  readonly gpuIndices: readonly number[];
  readonly cpu: number;
  readonly memoryMiB: number;
  readonly network: ContainerNetwork;
  /** Its writable directory on the host (made by the caller, owned by `uid` once launched), /scratch inside. */
  readonly workDir: string;
  /** Its environment (HOME and the like already pointing inside). */
  readonly env: Record<string, string>;
  /** What runs inside, as the container's user (`argv[0]` found on the env's PATH). */
  readonly argv: readonly string[];
  /** Host paths mounted read-only inside, at `target`. */
  readonly readOnly?: readonly { readonly source: string; readonly target: string }[];
  /** The node binary the program may be (its installation is mounted when it is not under /usr). */
  readonly nodePath?: string;
}

/** A LocalExecutor container: the worker, its bundle, and its image layer's node_modules. */
export function containerRequest(
  spec: ContainerSpec,
  workDir: string,
  workerPath: string,
  nodePath: string,
  env: Record<string, string>,
): SandboxRequest {
  const workerFile = workerPath.slice(workerPath.lastIndexOf('/') + 1);
  return {
    id: spec.containerId,
    gpuIndices: spec.gpuIndices,
    cpu: spec.cpu,
    memoryMiB: spec.memoryMiB,
    network: spec.network,
    workDir,
    env,
    nodePath,
    argv: [nodePath, join(SANDBOX_PATHS.worker, workerFile), pathToFileURL(SANDBOX_PATHS.bundle).href],
    readOnly: [
      { source: dirname(realpathSync(workerPath)), target: SANDBOX_PATHS.worker },
      { source: spec.bundlePath, target: SANDBOX_PATHS.bundle },
      ...(spec.nodeModulesPath ? [{ source: spec.nodeModulesPath, target: SANDBOX_PATHS.nodeModules }] : []),
    ],
  };
}

export class BubblewrapSandbox {
  readonly name = 'bubblewrap';
  private readonly uids: UidPool;

  constructor(private readonly o: BubblewrapOptions) {
    this.uids = o.uids ?? containerUids;
  }

  /**
   * Whether containers can be isolated here, without changing anything: bubblewrap and setpriv installed, root,
   * cgroup controllers mounted, and a trial sandbox that starts. Throws one line saying what is missing.
   */
  static check(options: { path?: string } = {}): { bwrap: string; setpriv: string } {
    const bwrap = which('bwrap', options.path);
    if (!bwrap)
      throw new Error(
        'bubblewrap (bwrap) is not installed: apt-get install bubblewrap, or pass --isolation none',
      );
    const setpriv = which('setpriv', options.path);
    if (!setpriv) throw new Error('setpriv is not installed (util-linux): apt-get install util-linux');
    if (process.getuid?.() !== 0)
      throw new Error(
        'isolation needs root (a cgroup and a user per container): run the agent as root, or pass --isolation none',
      );
    const missing = CgroupManager.missingControllers();
    if (missing) throw new Error(`cgroups are not usable: ${missing}`);
    const probe = spawnSync(
      bwrap,
      [
        ...systemMounts(),
        '--unshare-pid',
        '--unshare-ipc',
        '--unshare-uts',
        '--proc',
        '/proc',
        '--dev',
        '/dev',
        'true',
      ],
      { encoding: 'utf8', timeout: 10_000 },
    );
    if (probe.status !== 0)
      throw new Error(
        `bubblewrap cannot make a sandbox here: ${(probe.stderr || probe.error?.message || `exit ${probe.status}`).trim().split('\n')[0]}`,
      );
    return { bwrap, setpriv };
  }

  /** `check`, then the cgroups of this process's containers (on cgroup v2 this process moves to a leaf). */
  static detect(options: { devRoot?: string; path?: string; scope?: string } = {}): BubblewrapSandbox {
    const tools = BubblewrapSandbox.check(options);
    let cgroups: CgroupManager;
    try {
      cgroups = CgroupManager.open(options.scope ? { scope: options.scope } : {});
    } catch (error) {
      throw new Error(`cgroups are not usable: ${(error as Error).message}`);
    }
    return new BubblewrapSandbox({
      ...tools,
      cgroups,
      ...(options.devRoot ? { devRoot: options.devRoot } : {}),
    });
  }

  /** Ends what a previous run of this agent (the same scope) left running; how many containers that was. */
  sweepLeftovers(): Promise<number> {
    return this.o.cgroups.sweepLeftovers();
  }

  /** The command that starts the container, with its cgroup made and its user chosen. */
  launch(request: SandboxRequest): SandboxLaunch {
    const uid = this.uids.take();
    let cgroup: ContainerCgroup;
    try {
      cgroup = this.o.cgroups.create(request.id, {
        cpu: request.cpu,
        memoryMiB: request.memoryMiB,
        pids: PIDS_MAX,
      });
    } catch (error) {
      this.uids.give(uid);
      throw error;
    }
    const bwrapArgs = [
      '--die-with-parent',
      '--new-session',
      '--unshare-pid',
      '--unshare-ipc',
      '--unshare-uts',
      '--unshare-cgroup-try',
      ...(request.network === 'none' ? ['--unshare-net'] : []),
      '--hostname',
      request.id.slice(0, 63),
      ...systemMounts(),
      ...(request.nodePath ? nodeMount(request.nodePath) : []),
      ...(isUnder(this.o.setpriv, SYSTEM_DIRS) ? [] : ['--ro-bind', this.o.setpriv, this.o.setpriv]),
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      ...this.gpuDevices(request.gpuIndices),
      '--tmpfs',
      '/tmp',
      ...(request.readOnly ?? []).flatMap(({ source, target }) => [
        ...openDirs(target),
        '--ro-bind',
        source,
        target,
      ]),
      '--bind',
      request.workDir,
      SANDBOX_PATHS.scratch,
      '--chdir',
      SANDBOX_PATHS.scratch,
      '--remount-ro',
      '/',
      '--',
      this.o.setpriv,
      '--reuid',
      String(uid),
      '--regid',
      String(uid),
      '--clear-groups',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--no-new-privs',
      '--',
      ...request.argv,
    ];
    return {
      command: '/bin/sh',
      args: ['-c', JOIN_SCRIPT, 'gpubroker-sandbox', this.o.bwrap, ...bwrapArgs],
      env: { ...request.env, GPUBROKER_CGROUP_PROCS: cgroup.procsFiles.join(':') },
      uid,
      cgroup,
      home: SANDBOX_PATHS.scratch,
      release: async () => {
        await cgroup.remove();
        this.uids.give(uid);
      },
    };
  }

  /** `--dev-bind` of the container's GPUs (`nvidia<N>`) and the control devices, where the host has them. */
  private gpuDevices(indices: readonly number[]): string[] {
    const root = this.o.devRoot ?? '/dev';
    const names = [...indices.map((i) => `nvidia${i}`), ...NVIDIA_CONTROL_DEVICES];
    return names.flatMap((name) => {
      const source = join(root, name);
      return existsSync(source) ? ['--dev-bind', source, `/dev/${name}`] : [];
    });
  }
}

/**
 * The image's base: the host's /usr and /etc read-only; /bin, /lib… as the links (merged /usr) or directories they
 * are. An OCI base image, once registries are reachable, replaces this: its rootfs, unpacked into the agent's layer
 * cache and verified by digest, bound read-only as / instead.
 */
function systemMounts(): string[] {
  const args: string[] = [];
  for (const dir of SYSTEM_DIRS) if (existsSync(dir)) args.push('--ro-bind', dir, dir);
  for (const link of SYSTEM_LINKS) {
    let stat: ReturnType<typeof lstatSync>;
    try {
      stat = lstatSync(link);
    } catch {
      continue;
    }
    if (stat.isSymbolicLink()) args.push('--symlink', readlinkSync(link), link);
    else if (stat.isDirectory()) args.push('--ro-bind', link, link);
  }
  return args;
}

/** Node's installation, read-only, where it is not part of /usr already (nvm, a tarball in /opt). */
function nodeMount(nodePath: string): string[] {
  const real = realpathSync(nodePath);
  const mounts: string[] = [];
  for (const path of new Set([nodePath, real])) {
    if (isUnder(path, SYSTEM_DIRS)) continue;
    // bin/node: its installation is the directory above (lib/node_modules beside it).
    const prefix = dirname(dirname(path));
    mounts.push(...openDirs(prefix), '--ro-bind', prefix, prefix);
  }
  return mounts;
}

/**
 * `--dir` for each directory above `path` (bwrap would make them 0700 as root, closed to the container's user),
 * world-readable.
 */
function openDirs(path: string): string[] {
  const args: string[] = [];
  for (let dir = dirname(path); dir !== '/' && dir !== '.'; dir = dirname(dir))
    args.unshift('--perms', '0755', '--dir', dir);
  return args;
}

function isUnder(path: string, dirs: readonly string[]): boolean {
  return dirs.some((dir) => path === dir || path.startsWith(`${dir}/`));
}

function which(command: string, path = process.env.PATH ?? '/usr/bin:/bin'): string | undefined {
  for (const dir of path.split(delimiter)) {
    const candidate = join(dir, command);
    if (existsSync(candidate)) return candidate;
  }
  for (const fallback of [`/usr/bin/${command}`, `/bin/${command}`])
    if (existsSync(fallback)) return fallback;
  return undefined;
}
