import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataFileError, ValidationError } from '../lib/errors.ts';
import { coldStartSample } from './cold-starts.ts';
import { peakGpus } from './engine/peak.ts';
import { loadAlibabaGpu } from './workloads/alibaba-gpu.ts';
import { loadAlibabaSd } from './workloads/alibaba-sd.ts';
import { AZURE_CODE_PATH, loadAzureLlm } from './workloads/azure-llm.ts';
import { resolveWorkload } from './workloads/resolve-workload.ts';
import { scaledDurationMs, scaledRequests } from './workloads/scale.ts';
import { syntheticWorkload } from './workloads/synthetic.ts';
import type { CallRequest, SimRequest, Workload } from './workloads/workload.ts';

const HOUR = 3_600_000;
const dir = mkdtempSync(join(tmpdir(), 'gpubroker-workloads-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const sorted = (requests: readonly SimRequest[]) =>
  requests.every((r, i) => i === 0 || (requests[i - 1] as SimRequest).atMs <= r.atMs);

describe('bundled traces', () => {
  it('reads the whole Stable Diffusion trace as calls on one L4 each, in arrival order', () => {
    const w = loadAlibabaSd();
    expect(w.requests).toHaveLength(26_823);
    expect(w.gpu).toBe('L4');
    expect(sorted(w.requests)).toBe(true);
    expect(w.requests[0]).toEqual({ kind: 'call', atMs: 57 * 60_000 + 50_000, serviceMs: 32_000 });
    expect(w.durationMs / (24 * HOUR)).toBeGreaterThan(23);
    expect(new Date(w.startMs).toISOString()).toBe('2024-11-15T16:00:00.000Z');
  });

  it('turns the GPU cluster tasks into leases of their gang size and run time, leaving out CPU-only and never-scheduled tasks', () => {
    const w = loadAlibabaGpu();
    expect(w.function).toBeUndefined();
    expect(w.requests.every((r) => r.kind === 'lease')).toBe(true);
    // 8,152 tasks: 1,088 without GPUs, and the never-scheduled ones, are left out.
    expect(w.requests.length).toBeGreaterThan(6_000);
    expect(w.requests.length).toBeLessThan(8_152 - 1_088);
    const gangs = new Set(w.requests.map((r) => (r.kind === 'lease' ? r.gpus : 0)));
    expect([...gangs].sort()).toEqual([1, 2, 4, 8]);
  });

  it('gives Azure LLM requests a service time from their tokens at the configured throughput', () => {
    const slow = loadAzureLlm(AZURE_CODE_PATH, 'azure-code', {
      tokensPerSecond: 50,
      prefillTokensPerSecond: 5_000,
    });
    const fast = loadAzureLlm(AZURE_CODE_PATH, 'azure-code', {
      tokensPerSecond: 100,
      prefillTokensPerSecond: 10_000,
    });
    expect(slow.requests).toHaveLength(8_819);
    // The first row: 4,808 context tokens and 10 generated.
    const first = slow.requests.find((r) => r.kind === 'call') as CallRequest;
    expect(first.serviceMs).toBe(Math.round(1000 * (4_808 / 5_000 + 10 / 50)));
    const total = (w: Workload) => w.requests.reduce((s, r) => s + (r.kind === 'call' ? r.serviceMs : 0), 0);
    expect(total(fast) / total(slow)).toBeCloseTo(0.5, 2);
    expect(slow.function?.concurrency).toBe(8);
  });

  it('draws cold starts from the 7,531 measured model loads', () => {
    const sample = coldStartSample();
    expect(sample).toHaveLength(7_531);
    expect(Math.min(...sample)).toBe(1_329);
  });
});

describe('malformed CSV', () => {
  it('names the file and the line of a row whose value is not a number', () => {
    const path = file(
      'bad-sd.csv',
      'gmt_create,exec_time_seconds\n2024-11-15 16:57:50,32\n2024-11-15 16:58:00,fast\n',
    );
    expect(() => resolveWorkload(path, { seed: 1 })).toThrow(DataFileError);
    expect(() => resolveWorkload(path, { seed: 1 })).toThrow(/bad-sd\.csv, line 3, field exec_time_seconds/);
  });

  it('names the file and the line of a row with the wrong number of fields', () => {
    const path = file('ragged.csv', 'arrival_seconds,duration_seconds\n1,2\n3,4,5\n');
    expect(() => resolveWorkload(path, { seed: 1 })).toThrow(/ragged\.csv, line 3: malformed CSV/);
  });

  it('names a date that does not exist', () => {
    const path = file(
      'bad-date.csv',
      'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-13-40 18:17:03.98,10,10\n',
    );
    expect(() => resolveWorkload(path, { seed: 1 })).toThrow(/bad-date\.csv, line 2, field TIMESTAMP/);
  });

  it('rejects a file of no known layout, and a name that is neither a workload nor a file', () => {
    const path = file('other.csv', 'a,b\n1,2\n');
    expect(() => resolveWorkload(path, { seed: 1 })).toThrow(/other\.csv, line 1: unknown layout/);
    expect(() => resolveWorkload('alibaba-xx', { seed: 1 })).toThrow(ValidationError);
  });
});

describe('a user CSV', () => {
  it('reads arrival_seconds,duration_seconds[,kind][,gpus] rows in any order', () => {
    const path = file('mine.csv', 'arrival_seconds,duration_seconds,kind,gpus\n10,5,call,\n2,60,lease,4\n');
    const w = resolveWorkload(path, { seed: 1, gpu: 'H100' });
    expect(w.name).toBe('mine');
    expect(w.gpu).toBe('H100');
    expect(w.requests).toEqual([
      { kind: 'lease', atMs: 2_000, gpus: 4, durationMs: 60_000 },
      { kind: 'call', atMs: 10_000, serviceMs: 5_000 },
    ]);
  });

  it('reads a file in the layout of a bundled trace', () => {
    const path = file(
      'pods.csv',
      'num_gpu,creation_time,deletion_time,scheduled_time\n2,0,100,10\n0,0,100,0\n1,5,50,\n',
    );
    expect(resolveWorkload(path, { seed: 1 }).requests).toEqual([
      { kind: 'lease', atMs: 0, gpus: 2, durationMs: 90_000 },
    ]);
  });
});

describe('synthetic workloads', () => {
  it('are a function of their seed', () => {
    for (const name of ['diurnal', 'bursty', 'batch'] as const) {
      const a = syntheticWorkload(name, 6, 1);
      expect(syntheticWorkload(name, 6, 1).requests).toEqual(a.requests);
      expect(syntheticWorkload(name, 6, 2).requests).not.toEqual(a.requests);
      expect(sorted(a.requests)).toBe(true);
      expect(a.requests.every((r) => r.atMs >= 0 && r.atMs < 6 * HOUR)).toBe(true);
    }
  });

  it('diurnal is busiest in the afternoon and quietest at night', () => {
    const w = syntheticWorkload('diurnal', 24, 3);
    const inHour = (h: number) =>
      w.requests.filter((r) => r.atMs >= h * HOUR && r.atMs < (h + 1) * HOUR).length;
    // 1 call/s on average, ±80 %: about 6,480/h at 14:00 and 720/h at 02:00.
    expect(inHour(14)).toBeGreaterThan(5_500);
    expect(inHour(2)).toBeLessThan(1_200);
    expect(w.requests.length / 86_400).toBeCloseTo(1, 1);
  });

  it('bursty has minutes far above its quiet rate', () => {
    const w = syntheticWorkload('bursty', 24, 1);
    const perMinute = new Map<number, number>();
    for (const r of w.requests)
      perMinute.set(Math.floor(r.atMs / 60_000), (perMinute.get(Math.floor(r.atMs / 60_000)) ?? 0) + 1);
    const counts = [...perMinute.values()].sort((a, b) => a - b);
    expect(counts[Math.floor(counts.length / 2)]).toBeLessThan(25);
    expect(counts.at(-1)).toBeGreaterThan(200);
  });

  it('batch fans out 300 calls at the top of every hour', () => {
    const w = syntheticWorkload('batch', 3, 1);
    for (const h of [0, 1, 2])
      expect(
        w.requests.filter((r) => r.atMs >= h * HOUR && r.atMs < h * HOUR + 1000).length,
      ).toBeGreaterThanOrEqual(300);
    expect(w.requests.length).toBeLessThan(3 * 300 + 3 * 3600 * 0.2);
  });
});

describe('scaling', () => {
  const base = syntheticWorkload('diurnal', 4, 7);

  it('×N overlays N shifted copies in arrival order, keeping the length of the trace', () => {
    const scaled = [...scaledRequests(base, { scale: 5, speed: 1, seed: 1 })];
    expect(scaled).toHaveLength(5 * base.requests.length);
    expect(sorted(scaled)).toBe(true);
    expect(scaled.every((r) => r.atMs >= 0 && r.atMs < base.durationMs)).toBe(true);
    // Copies are shifted: the overlay is not five copies of each arrival time.
    const distinct = new Set(scaled.map((r) => r.atMs)).size;
    expect(distinct).toBeGreaterThan(4 * base.requests.length);
    // The same seed gives the same overlay; another seed another one.
    expect([...scaledRequests(base, { scale: 5, speed: 1, seed: 1 })]).toEqual(scaled);
    expect([...scaledRequests(base, { scale: 5, speed: 1, seed: 2 })]).not.toEqual(scaled);
  });

  it('a fractional scale keeps that share of one more copy, and below 1 thins the trace', () => {
    const n = base.requests.length;
    const more = [...scaledRequests(base, { scale: 2.5, speed: 1, seed: 1 })].length;
    expect(more / n).toBeGreaterThan(2.4);
    expect(more / n).toBeLessThan(2.6);
    const fewer = [...scaledRequests(base, { scale: 0.25, speed: 1, seed: 1 })].length;
    expect(fewer / n).toBeGreaterThan(0.2);
    expect(fewer / n).toBeLessThan(0.3);
  });

  it('speed-up divides arrival times and keeps service times', () => {
    const twice = [...scaledRequests(base, { scale: 1, speed: 2, seed: 1 })];
    expect(twice.map((r) => r.atMs)).toEqual(base.requests.map((r) => Math.floor(r.atMs / 2)));
    expect(twice.map((r) => (r as CallRequest).serviceMs)).toEqual(
      base.requests.map((r) => (r as CallRequest).serviceMs),
    );
    expect(scaledDurationMs(base, { scale: 1, speed: 2, seed: 1 })).toBe(base.durationMs / 2);
    const half = [...scaledRequests(base, { scale: 1, speed: 0.5, seed: 1 })];
    expect(half.at(-1)?.atMs).toBe((base.requests.at(-1)?.atMs ?? 0) * 2);
  });

  it('stops at the end of the window without reading further', () => {
    const first = [...scaledRequests(base, { scale: 3, speed: 1, seed: 1 }, HOUR)];
    expect(first.every((r) => r.atMs < HOUR)).toBe(true);
    expect(first.length).toBeGreaterThan(0);
  });

  it('rejects a scale or speed that is not positive', () => {
    expect(() => [...scaledRequests(base, { scale: 0, speed: 1, seed: 1 })]).toThrow(/--scale/);
    expect(() => [...scaledRequests(base, { scale: 1, speed: -1, seed: 1 })]).toThrow(/--speed/);
  });
});

describe('the peak a static reservation holds', () => {
  it('is the most GPUs held at once with no waiting, containers counted by concurrency', () => {
    const requests: SimRequest[] = [
      { kind: 'call', atMs: 0, serviceMs: 10_000 },
      { kind: 'call', atMs: 1_000, serviceMs: 10_000 },
      { kind: 'call', atMs: 2_000, serviceMs: 10_000 },
      { kind: 'lease', atMs: 5_000, gpus: 8, durationMs: 60_000 },
      { kind: 'call', atMs: 30_000, serviceMs: 1_000 },
    ];
    expect(peakGpus(requests, 120_000, { gpus: 1, concurrency: 1 })).toBe(11);
    expect(peakGpus(requests, 120_000, { gpus: 1, concurrency: 2 })).toBe(10);
    expect(peakGpus(requests, 120_000, { gpus: 2, concurrency: 1 })).toBe(14);
  });
});
