/**
 * One cgroup per container, holding its CPU, memory and process limits: on cgroup v1 (a hierarchy per controller:
 * `memory`, `cpu`, `pids`) and on cgroup v2 (one unified tree). The container's first process joins it before it
 * executes anything (`procsFiles`: the sandbox's wrapper writes its own pid there, then execs), so every process
 * it ever starts is counted, limited and killed with it.
 *
 * Where containers go: under the agent's own cgroup (read from /proc/self/cgroup), in `gpubroker/<container id>`.
 * On v2 a cgroup that holds processes cannot hand controllers to children ("no internal processes"), so the agent
 * first moves itself into a leaf `<own>/agent` and enables `memory cpu pids` for `<own>` and `<own>/gpubroker`, as
 * a runtime does in a systemd unit with `Delegate=yes`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CgroupLimits {
  /** CPU cores (a CFS quota of `cpu` × the period). */
  readonly cpu: number;
  readonly memoryMiB: number;
  /** Processes and threads at once (a fork bomb stops here). */
  readonly pids: number;
}

const CPU_PERIOD_US = 100_000;
const CONTROLLERS = ['memory', 'cpu', 'pids'] as const;
type Controller = (typeof CONTROLLERS)[number];

/** Where the container cgroups of this process go, per version. */
export type CgroupLayout =
  | { readonly version: 1; readonly parents: Readonly<Record<Controller, string>> }
  | { readonly version: 2; readonly parent: string };

/** A container's cgroup: its directories, the files that admit a process, and what it saw. */
export class ContainerCgroup {
  constructor(
    readonly layout: CgroupLayout,
    readonly dirs: readonly string[],
    /** The directory with the memory controller's files. */
    readonly memoryDir: string,
    readonly limits: CgroupLimits,
  ) {}

  /** The `cgroup.procs` files a process writes its pid into to join (one per v1 hierarchy, one on v2). */
  get procsFiles(): string[] {
    return this.dirs.map((dir) => join(dir, 'cgroup.procs'));
  }

  /** Every process in it now. */
  pids(): number[] {
    const seen = new Set<number>();
    for (const file of this.procsFiles)
      for (const line of readText(file).split('\n')) {
        const pid = Number(line);
        if (Number.isSafeInteger(pid) && pid > 0) seen.add(pid);
      }
    return [...seen];
  }

  /** Signals every process in it (those that already exited are skipped). */
  signalAll(signal: NodeJS.Signals, except?: number): void {
    for (const pid of this.pids()) {
      if (pid === except) continue;
      try {
        process.kill(pid, signal);
      } catch {
        // Gone already.
      }
    }
  }

  /** How many times the kernel's OOM killer killed a process of it. */
  oomKills(): number {
    if (this.layout.version === 2) return counter(join(this.memoryDir, 'memory.events'), 'oom_kill');
    const control = readText(join(this.memoryDir, 'memory.oom_control'));
    if (/^oom_kill /m.test(control)) return counter(join(this.memoryDir, 'memory.oom_control'), 'oom_kill');
    // Kernels before 4.13 have no oom_kill line: a hit limit is the best evidence there is.
    return Number(readText(join(this.memoryDir, 'memory.failcnt')).trim()) > 0 ? 1 : 0;
  }

  /** Kills whatever is left (SIGKILL until empty, at most ~1 s) and removes the directories. */
  async remove(): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      if (this.layout.version === 2 && existsSync(join(this.dirs[0] ?? '', 'cgroup.kill')))
        tryWrite(join(this.dirs[0] ?? '', 'cgroup.kill'), '1');
      else this.signalAll('SIGKILL');
      let left = 0;
      for (const dir of this.dirs) {
        try {
          rmdirSync(dir);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') left++;
        }
      }
      if (left === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Makes the cgroups of this process's containers; throws with one line when the machine does not allow it. */
export class CgroupManager {
  private constructor(readonly layout: CgroupLayout) {}

  /**
   * Finds the cgroup hierarchy (v2 when `/sys/fs/cgroup` is cgroup2, else the v1 `memory`, `cpu` and `pids`
   * hierarchies) and makes `gpubroker/<scope>/` under this process's cgroup: one scope per agent (its state
   * directory), so that agents sharing a machine never touch each other's containers. `mountinfo` and
   * `selfCgroup` are the text of /proc/self/mountinfo and /proc/self/cgroup (for tests).
   */
  static open(
    options: { mountinfo?: string; selfCgroup?: string; selfPid?: number; scope?: string } = {},
  ): CgroupManager {
    const scope = options.scope ?? 'default';
    if (!/^[A-Za-z0-9_.-]+$/.test(scope)) throw new Error(`bad cgroup scope ${JSON.stringify(scope)}`);
    const mountinfo = options.mountinfo ?? readText('/proc/self/mountinfo');
    const selfCgroup = options.selfCgroup ?? readText('/proc/self/cgroup');
    const mounts = parseCgroupMounts(mountinfo);
    const own = parseSelfCgroup(selfCgroup);
    const unified = mounts.find((m) => m.fstype === 'cgroup2');
    const v1 = (controller: Controller) =>
      mounts.find((m) => m.fstype === 'cgroup' && m.options.split(',').includes(controller));
    if (CONTROLLERS.every((c) => v1(c))) {
      const parents = {} as Record<Controller, string>;
      for (const controller of CONTROLLERS) {
        const mount = v1(controller) as CgroupMount;
        // The path of our cgroup in that hierarchy; a cgroup namespace may show `/` for a deeper one.
        const path = own.v1.get(mount.options.split(',').find((o) => own.v1.has(o)) ?? controller) ?? '/';
        const ownDir = join(mount.mountPoint, relativeTo(mount.root, path));
        const base = existsSync(ownDir) ? ownDir : mount.mountPoint;
        parents[controller] = join(base, 'gpubroker', scope);
        mkdirOrThrow(parents[controller]);
      }
      return new CgroupManager({ version: 1, parents });
    }
    if (unified) {
      const ownDir = join(unified.mountPoint, relativeTo(unified.root, own.v2 ?? '/'));
      const available = readText(join(ownDir, 'cgroup.controllers')).split(/\s+/);
      const missing = CONTROLLERS.filter((c) => !available.includes(c));
      if (missing.length > 0)
        throw new Error(`cgroup v2 at ${ownDir} does not delegate the ${missing.join(', ')} controller(s)`);
      const isRoot = ownDir === unified.mountPoint;
      if (!isRoot) {
        // Leave the cgroup that will hand out controllers: this process goes into a leaf of its own.
        const leaf = join(ownDir, 'agent');
        mkdirOrThrow(leaf);
        writeOrThrow(join(leaf, 'cgroup.procs'), String(options.selfPid ?? process.pid));
      }
      const enable = CONTROLLERS.map((c) => `+${c}`).join(' ');
      writeOrThrow(join(ownDir, 'cgroup.subtree_control'), enable);
      const group = join(ownDir, 'gpubroker');
      mkdirOrThrow(group);
      writeOrThrow(join(group, 'cgroup.subtree_control'), enable);
      const parent = join(group, scope);
      mkdirOrThrow(parent);
      writeOrThrow(join(parent, 'cgroup.subtree_control'), enable);
      return new CgroupManager({ version: 2, parent });
    }
    throw new Error('no cgroup hierarchy with the memory, cpu and pids controllers is mounted');
  }

  /** Why container cgroups cannot be made here (no hierarchy with the controllers), or undefined. Reads only. */
  static missingControllers(
    mountinfo = readText('/proc/self/mountinfo'),
    selfCgroup = readText('/proc/self/cgroup'),
  ): string | undefined {
    const mounts = parseCgroupMounts(mountinfo);
    if (
      CONTROLLERS.every((c) => mounts.some((m) => m.fstype === 'cgroup' && m.options.split(',').includes(c)))
    )
      return undefined;
    const unified = mounts.find((m) => m.fstype === 'cgroup2');
    if (!unified) return 'no cgroup hierarchy with the memory, cpu and pids controllers is mounted';
    const ownDir = join(unified.mountPoint, relativeTo(unified.root, parseSelfCgroup(selfCgroup).v2 ?? '/'));
    const available = readText(join(ownDir, 'cgroup.controllers')).split(/\s+/);
    const missing = CONTROLLERS.filter((c) => !available.includes(c));
    return missing.length > 0 ? `cgroup v2 at ${ownDir} does not delegate ${missing.join(', ')}` : undefined;
  }

  /** Makes the container's cgroup with its limits. Throws if it exists (a container id is used once). */
  create(containerId: string, limits: CgroupLimits): ContainerCgroup {
    const layout = this.layout;
    const memoryBytes = String(limits.memoryMiB * 1024 * 1024);
    if (layout.version === 2) {
      const dir = join(layout.parent, containerId);
      mkdirSync(dir);
      const cgroup = new ContainerCgroup(layout, [dir], dir, limits);
      try {
        writeOrThrow(join(dir, 'memory.max'), memoryBytes);
        tryWrite(join(dir, 'memory.swap.max'), '0');
        writeOrThrow(join(dir, 'cpu.max'), `${limits.cpu * CPU_PERIOD_US} ${CPU_PERIOD_US}`);
        writeOrThrow(join(dir, 'pids.max'), String(limits.pids));
      } catch (error) {
        void cgroup.remove();
        throw error;
      }
      return cgroup;
    }
    const dirs = CONTROLLERS.map((c) => join(layout.parents[c], containerId));
    // One directory per hierarchy; `cpu` may share a hierarchy with `cpuacct` but never with `memory`.
    const unique = [...new Set(dirs)];
    for (const dir of unique) mkdirSync(dir);
    const memory = join(layout.parents.memory, containerId);
    const cgroup = new ContainerCgroup(layout, unique, memory, limits);
    try {
      writeOrThrow(join(memory, 'memory.limit_in_bytes'), memoryBytes);
      // No swap beyond the limit, where the kernel accounts swap.
      tryWrite(join(memory, 'memory.memsw.limit_in_bytes'), memoryBytes);
      const cpu = join(layout.parents.cpu, containerId);
      writeOrThrow(join(cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
      writeOrThrow(join(cpu, 'cpu.cfs_quota_us'), String(limits.cpu * CPU_PERIOD_US));
      writeOrThrow(join(layout.parents.pids, containerId, 'pids.max'), String(limits.pids));
    } catch (error) {
      void cgroup.remove();
      throw error;
    }
    return cgroup;
  }

  /**
   * Ends the containers a previous run of this agent left (it died; nobody can reach them any more: their IPC
   * channels died with it) and removes their cgroups. Returns how many there were.
   */
  async sweepLeftovers(): Promise<number> {
    const layout = this.layout;
    const parents = layout.version === 2 ? [layout.parent] : Object.values(layout.parents);
    const names = new Set<string>();
    for (const parent of new Set(parents)) {
      try {
        for (const e of readdirSync(parent, { withFileTypes: true })) if (e.isDirectory()) names.add(e.name);
      } catch {
        // Not there: nothing left.
      }
    }
    for (const name of names) {
      const dirs =
        layout.version === 2
          ? [join(layout.parent, name)]
          : [...new Set(Object.values(layout.parents))].map((p) => join(p, name));
      const memoryDir = layout.version === 2 ? (dirs[0] as string) : join(layout.parents.memory, name);
      const present = dirs.filter((d) => existsSync(d));
      await new ContainerCgroup(layout, present, memoryDir, { cpu: 1, memoryMiB: 1, pids: 1 }).remove();
    }
    return names.size;
  }
}

interface CgroupMount {
  readonly root: string;
  readonly mountPoint: string;
  readonly fstype: string;
  readonly options: string;
}

/** The cgroup mounts in /proc/self/mountinfo: root, mount point, type and super options (the controllers). */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [fstype = '', , superOptions = ''] = right.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    mounts.push({
      root: unescapeOctal(fields[3] ?? '/'),
      mountPoint: unescapeOctal(fields[4] ?? ''),
      fstype,
      options: superOptions,
    });
  }
  return mounts;
}

/** /proc/self/cgroup: the path per v1 controller, and the v2 path (`0::/…`). */
export function parseSelfCgroup(text: string): { v1: Map<string, string>; v2: string | undefined } {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of text.split('\n')) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!match) continue;
    const [, id, controllers = '', path = '/'] = match;
    if (id === '0' && controllers === '') v2 = path;
    else for (const c of controllers.split(',')) v1.set(c.replace(/^name=/, 'name='), path);
  }
  return { v1, v2 };
}

function relativeTo(root: string, path: string): string {
  if (root === '/' || root === '') return path;
  return path === root ? '/' : path.startsWith(`${root}/`) ? path.slice(root.length) : '/';
}

/** mountinfo escapes spaces and the like as octal (`\040`). */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

function counter(file: string, key: string): number {
  const match = new RegExp(`^${key} (\\d+)$`, 'm').exec(readText(file));
  return match ? Number(match[1]) : 0;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function mkdirOrThrow(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new Error(
      `cannot make cgroup ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

function writeOrThrow(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch (error) {
    throw new Error(
      `cannot write ${value} to ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

function tryWrite(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch {
    // Optional.
  }
}
