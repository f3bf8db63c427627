/**
 * Where container cgroups go and what is written there, on cgroup v1 (a hierarchy per controller) and v2 (one
 * tree, with the agent moved into a leaf of its own), read from /proc/self/mountinfo and /proc/self/cgroup as the
 * kernel prints them. The cgroup trees here are plain directories: the kernel's side (limits enforced, the OOM
 * killer) is exercised for real by sandbox.test.ts.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CgroupManager, parseCgroupMounts, parseSelfCgroup } from './cgroups.ts';

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('container cgroups', () => {
  it('on v1 go under the agent’s own cgroup of each hierarchy, with CPU, memory and pids limits', () => {
    dir = mkdtempSync(join(tmpdir(), 'gpubroker-cgroups-'));
    for (const c of ['memory', 'cpu,cpuacct', 'pids'])
      mkdirSync(join(dir, c, 'svc', 'agent'), { recursive: true });
    const mountinfo = [
      `30 25 0:26 / ${dir}/memory rw,nosuid - cgroup cgroup rw,memory`,
      `31 25 0:27 / ${dir}/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct`,
      `32 25 0:28 / ${dir}/pids rw,nosuid - cgroup cgroup rw,pids`,
      '33 25 0:29 / /proc rw - proc proc rw',
    ].join('\n');
    const selfCgroup = '4:memory:/svc/agent\n3:cpu,cpuacct:/svc/agent\n2:pids:/svc/agent\n0::/\n';
    expect(CgroupManager.missingControllers(mountinfo, selfCgroup)).toBeUndefined();
    const manager = CgroupManager.open({ mountinfo, selfCgroup });
    const cgroup = manager.create('ctr_1', { cpu: 2, memoryMiB: 512, pids: 4096 });
    const memory = join(dir, 'memory', 'svc', 'agent', 'gpubroker', 'default', 'ctr_1');
    const cpu = join(dir, 'cpu,cpuacct', 'svc', 'agent', 'gpubroker', 'default', 'ctr_1');
    expect(cgroup.procsFiles).toEqual([
      join(memory, 'cgroup.procs'),
      join(cpu, 'cgroup.procs'),
      join(dir, 'pids', 'svc', 'agent', 'gpubroker', 'default', 'ctr_1', 'cgroup.procs'),
    ]);
    expect(readFileSync(join(memory, 'memory.limit_in_bytes'), 'utf8')).toBe(String(512 * 1024 * 1024));
    expect(readFileSync(join(cpu, 'cpu.cfs_quota_us'), 'utf8')).toBe('200000');
    expect(readFileSync(join(cpu, 'cpu.cfs_period_us'), 'utf8')).toBe('100000');
    expect(
      readFileSync(join(dir, 'pids', 'svc', 'agent', 'gpubroker', 'default', 'ctr_1', 'pids.max'), 'utf8'),
    ).toBe('4096');
    // The OOM killer's count, as the kernel reports it.
    writeFileSync(join(memory, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n');
    expect(cgroup.oomKills()).toBe(0);
    writeFileSync(join(memory, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    expect(cgroup.oomKills()).toBe(2);
    expect(() => manager.create('ctr_1', { cpu: 1, memoryMiB: 128, pids: 10 })).toThrow(/EEXIST/);
  });

  it('on v2 move the agent into a leaf, delegate memory, cpu and pids, and write memory.max and cpu.max', () => {
    dir = mkdtempSync(join(tmpdir(), 'gpubroker-cgroups-'));
    const own = join(dir, 'system.slice', 'gpubroker-agent.service');
    mkdirSync(own, { recursive: true });
    writeFileSync(join(own, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
    const mountinfo = `29 23 0:26 / ${dir} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate`;
    const selfCgroup = '0::/system.slice/gpubroker-agent.service\n';
    expect(parseSelfCgroup(selfCgroup).v2).toBe('/system.slice/gpubroker-agent.service');
    expect(CgroupManager.missingControllers(mountinfo, selfCgroup)).toBeUndefined();
    const manager = CgroupManager.open({ mountinfo, selfCgroup, selfPid: 4242, scope: 'agent-1' });
    expect(readFileSync(join(own, 'agent', 'cgroup.procs'), 'utf8')).toBe('4242');
    expect(readFileSync(join(own, 'cgroup.subtree_control'), 'utf8')).toBe('+memory +cpu +pids');
    expect(readFileSync(join(own, 'gpubroker', 'cgroup.subtree_control'), 'utf8')).toBe('+memory +cpu +pids');
    expect(readFileSync(join(own, 'gpubroker', 'agent-1', 'cgroup.subtree_control'), 'utf8')).toBe(
      '+memory +cpu +pids',
    );
    const cgroup = manager.create('ctr_2', { cpu: 1, memoryMiB: 256, pids: 100 });
    const leaf = join(own, 'gpubroker', 'agent-1', 'ctr_2');
    expect(cgroup.procsFiles).toEqual([join(leaf, 'cgroup.procs')]);
    expect(readFileSync(join(leaf, 'memory.max'), 'utf8')).toBe(String(256 * 1024 * 1024));
    expect(readFileSync(join(leaf, 'memory.swap.max'), 'utf8')).toBe('0');
    expect(readFileSync(join(leaf, 'cpu.max'), 'utf8')).toBe('100000 100000');
    writeFileSync(join(leaf, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n');
    expect(cgroup.oomKills()).toBe(1);
  });

  it('say what is missing where no hierarchy has the controllers', () => {
    dir = mkdtempSync(join(tmpdir(), 'gpubroker-cgroups-'));
    writeFileSync(join(dir, 'cgroup.controllers'), 'cpu io\n');
    const v2 = `29 23 0:26 / ${dir} rw - cgroup2 cgroup2 rw`;
    expect(CgroupManager.missingControllers(v2, '0::/\n')).toMatch(/does not delegate memory, pids/);
    expect(CgroupManager.missingControllers('', '')).toMatch(/no cgroup hierarchy/);
    // Mount points with spaces are escaped in mountinfo.
    expect(
      parseCgroupMounts(`30 25 0:26 / /sys/fs/my\\040cgroups rw - cgroup cgroup rw,memory`)[0]?.mountPoint,
    ).toBe('/sys/fs/my cgroups');
  });
});
