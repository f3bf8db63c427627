import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { describeProviderContract, virtualTime } from '../provider.contract.ts';
import { InsufficientCapacityError } from '../provider-errors.ts';
import { LocalProvider } from './local-provider.ts';
import { catalogGpuName, detectNvidiaGpus, parseNvidiaSmiCsv } from './nvidia-smi.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const scratch = mkdtempSync(join(tmpdir(), 'gpubroker-nvidia-smi-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A stand-in nvidia-smi: a real executable that prints a recorded output (or fails like the real one). */
function fakeNvidiaSmi(name: string, stdout: string, exitCode = 0): string {
  const path = join(scratch, name);
  const data = join(scratch, `${name}.out`);
  writeFileSync(data, stdout);
  writeFileSync(path, `#!/bin/sh\ncat '${data}'\nexit ${exitCode}\n`);
  chmodSync(path, 0o755);
  return path;
}

describeProviderContract('local (8 × H100 from recorded nvidia-smi output)', async () => {
  const clock = new VirtualClock(Date.UTC(2026, 10, 23));
  const provider = await LocalProvider.create({
    clock,
    devices: parseNvidiaSmiCsv(fixture('p5.48xlarge-h100x8.csv')),
    provisioningDelayMs: 30_000,
  });
  return {
    provider,
    offeringId: provider.offering.id,
    capacity: 1,
    ...virtualTime(clock),
    dispose: () => provider.close(),
  };
});

describe('nvidia-smi parsing', () => {
  it.each([
    ['p5.48xlarge-h100x8.csv', 8, 'H100', 81_559],
    ['p4d.24xlarge-a100x8.csv', 8, 'A100-40GB', 40_960],
    ['g5.xlarge-a10g.csv', 1, 'A10G', 23_028],
    ['t4x2.csv', 2, 'T4', 15_360],
    ['l4-noheader.csv', 1, 'L4', 23_034],
    ['memory-na.csv', 1, 'A100-80GB', 0],
  ])('%s: %i × %s', (file, count, gpu, memoryMiB) => {
    const devices = parseNvidiaSmiCsv(fixture(file));
    expect(devices).toHaveLength(count);
    expect(devices.map((d) => d.index)).toEqual(Array.from({ length: count }, (_, i) => i));
    for (const d of devices) expect(d).toMatchObject({ gpu, memoryMiB });
  });

  it('names GPUs as the catalog does', () => {
    const cases: [string, number, string][] = [
      ['NVIDIA H100 PCIe', 81_559, 'H100'],
      ['NVIDIA H100 NVL', 95_830, 'H100'],
      ['NVIDIA H200', 143_771, 'H200'],
      ['NVIDIA B200', 183_359, 'B200'],
      ['NVIDIA A100-PCIE-40GB', 40_960, 'A100-40GB'],
      ['NVIDIA A100 80GB PCIe', 81_920, 'A100-80GB'],
      ['NVIDIA A100-SXM4-80GB', 81_920, 'A100-80GB'],
      ['NVIDIA L40S', 46_068, 'L40S'],
      ['NVIDIA L4', 23_034, 'L4'],
      ['NVIDIA A10', 23_028, 'A10'],
      ['Tesla V100-SXM2-16GB', 16_384, 'V100'],
      ['Tesla P100-PCIE-16GB', 16_384, 'P100'],
      ['Tesla P4', 7_611, 'P4'],
      ['Tesla K80', 11_441, 'K80'],
      ['Tesla M60', 8_129, 'M60'],
      ['NVIDIA GeForce RTX 4090', 24_564, 'RTX-4090'],
      ['NVIDIA GH200 480GB', 97_871, 'GH200-480GB'],
    ];
    for (const [name, memory, gpu] of cases) expect(catalogGpuName(name, memory), name).toBe(gpu);
  });

  it('rejects output that is not index, name, memory', () => {
    expect(() => parseNvidiaSmiCsv('index, name\n0, NVIDIA L4\n')).toThrow(/unexpected nvidia-smi line 2/);
    expect(() => parseNvidiaSmiCsv('x, NVIDIA L4, 1 MiB\n')).toThrow(/line 1/);
  });
});

describe('local GPU detection (real child processes)', () => {
  it('reads the GPUs nvidia-smi prints', async () => {
    const result = await detectNvidiaGpus(fakeNvidiaSmi('ok', fixture('t4x2.csv')));
    expect(result).toMatchObject({ found: true });
    if (result.found) expect(result.devices.map((d) => d.gpu)).toEqual(['T4', 'T4']);
  });

  it('falls back to virtual GPUs when there is no driver, no device or no nvidia-smi', async () => {
    const noDriver = fakeNvidiaSmi(
      'nodriver',
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
      9,
    );
    expect(await detectNvidiaGpus(noDriver)).toEqual({
      found: false,
      reason: `${noDriver} failed: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.`,
    });
    const noDevice = fakeNvidiaSmi('nodevice', 'No devices were found\n', 6);
    expect(await detectNvidiaGpus(noDevice)).toMatchObject({
      found: false,
      reason: expect.stringMatching(/No devices/),
    });
    const missing = join(scratch, 'not-installed');
    expect(await detectNvidiaGpus(missing)).toEqual({ found: false, reason: `${missing} is not installed` });

    const provider = await LocalProvider.create({
      clock: new VirtualClock(0),
      nvidiaSmi: missing,
      virtualGpus: { count: 2, gpu: 'L4', memoryGiB: 24 },
    });
    expect(provider.detection).toBe(`virtual (${missing} is not installed)`);
    expect(provider.offering).toMatchObject({
      gpu: 'L4',
      gpusPerInstance: 2,
      gpuMemoryGiB: 24,
      vendor: 'local',
    });
  });

  it('offers the most numerous model of a mixed host', async () => {
    const provider = await LocalProvider.create({
      clock: new VirtualClock(0),
      nvidiaSmi: fakeNvidiaSmi('mixed', fixture('mixed.csv')),
    });
    expect(provider.detection).toBe('nvidia-smi');
    expect(provider.offering.instanceType).toBe('host-2xL4');
    expect(provider.devices.map((d) => d.index)).toEqual([1, 2]);
  });

  it('is one instance: a second provision waits for the first to end', async () => {
    const clock = new VirtualClock(0);
    const provider = await LocalProvider.create({ clock, nvidiaSmi: false });
    const id = provider.offering.id;
    const [first] = await provider.provision({ offeringId: id, count: 1, idempotencyKey: 'a' });
    await expect(
      provider.provision({ offeringId: id, count: 1, idempotencyKey: 'b' }),
    ).rejects.toBeInstanceOf(InsufficientCapacityError);
    expect((await provider.offerings())[0]?.available).toBe(false);
    await provider.terminate([first?.id ?? '']);
    await clock.runUntilIdle();
    const [second] = await provider.provision({ offeringId: id, count: 1, idempotencyKey: 'b' });
    expect(second?.id).not.toBe(first?.id);
  });
});
