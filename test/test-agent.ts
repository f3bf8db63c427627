/**
 * `gpubroker agent` as the tests start it: a child process of this Node, joined to a test broker, isolated in
 * bubblewrap where this machine can isolate (root, bubblewrap, cgroups: CI installs bubblewrap) and plain
 * elsewhere, so that the agent tests run on a developer's machine too.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { BubblewrapSandbox } from '../agent/executor/sandbox/bubblewrap.ts';

const BIN = new URL('../bin/gpubroker.js', import.meta.url).pathname;

let mode: 'bubblewrap' | 'none' | undefined;

/** The `--isolation` a test's agent gets. */
export function agentIsolation(): 'bubblewrap' | 'none' {
  if (!mode) {
    try {
      BubblewrapSandbox.check();
      mode = 'bubblewrap';
    } catch {
      mode = 'none';
    }
  }
  return mode;
}

/**
 * Starts `gpubroker agent --broker URL … --isolation … --state-dir DIR` with the given flags in between; with
 * `netns`, in that network namespace (one of `ip netns add`; root only). It enters the namespace with
 * `nsenter --net`, not `ip netns exec`, which mounts a sysfs of its own over /sys and so hides the cgroup
 * hierarchies that bubblewrap isolation needs; nsenter execs the agent, so the child's pid is the agent's.
 */
export function spawnAgent(
  agent: { broker: string; stateDir: string; args: readonly string[]; netns?: string },
  options: SpawnOptions,
): ChildProcess {
  const [file, ...prefix] = agent.netns
    ? ['nsenter', `--net=/var/run/netns/${agent.netns}`, '--', process.execPath]
    : [process.execPath];
  return spawn(
    file as string,
    [
      ...prefix,
      BIN,
      'agent',
      '--broker',
      agent.broker,
      ...agent.args,
      '--isolation',
      agentIsolation(),
      '--state-dir',
      agent.stateDir,
    ],
    options,
  );
}
