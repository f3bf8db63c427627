import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PolicyResult, SimulationResults } from '../results.ts';
import { escapeHtml, renderReport } from './render-report.ts';
import { writeReport } from './write-report.ts';

const START_MS = Date.UTC(2025, 0, 6, 8, 0);
const SAMPLE_MS = 5 * 60_000;
const GPUS = ['A100-80GB', 'H100-80GB'];

interface PolicyShape {
  readonly name: string;
  readonly costUsd: number;
  readonly headroom: number;
  readonly violations?: number;
}

function policyResult(shape: PolicyShape, samples: number): PolicyResult {
  const tMs = Array.from({ length: samples }, (_, i) => START_MS + i * SAMPLE_MS);
  const demandAt = (i: number, g: number) => Math.round(8 + 6 * Math.sin(i / 40 + g) + ((i * 7 + g) % 5));
  const byGpu = Object.fromEntries(
    GPUS.map((gpu, g) => {
      const demandGpus = tMs.map((_, i) => demandAt(i, g));
      const provisionedGpus = demandGpus.map((d, i) =>
        Math.max(0, d + shape.headroom - (i % 17 === 0 ? 3 : 0)),
      );
      return [gpu, { demandGpus, provisionedGpus }];
    }),
  );
  const unmetGpus = tMs.map((_, i) =>
    GPUS.reduce((sum, gpu) => {
      const s = byGpu[gpu];
      return s === undefined ? sum : sum + Math.max(0, (s.demandGpus[i] ?? 0) - (s.provisionedGpus[i] ?? 0));
    }, 0),
  );
  return {
    seed: 7,
    workload: 'diurnal',
    policy: shape.name,
    costUsd: shape.costUsd,
    gpuHoursProvisioned: 1_000 + shape.headroom * 100,
    gpuHoursUsed: 900,
    utilization: 900 / (1_000 + shape.headroom * 100),
    waitSamples: 5_000,
    paretoFrontier: false,
    waitMs: { p50: 4 + shape.headroom, p95: 2_500, p99: 60_000 / (1 + shape.headroom) },
    coldStarts: 40,
    preemptions: samples / 20,
    unmetGpuHours: 12.5,
    wallMs: 3_400,
    requests: 12_000,
    wallShare: { solver: 0.4, runtime: 0.3, meter: 0.1 },
    series: {
      tMs,
      byGpu,
      costUsd: tMs.map((_, i) => (shape.costUsd * (i + 1)) / samples),
      preemptions: tMs.map((_, i) => Math.floor(i / 20)),
      unmetGpus,
    },
    waitCdf: Array.from({ length: 200 }, (_, i) => ({
      ms: i === 0 ? 0 : 2 ** (i / 10),
      fraction: (i + 1) / 200,
    })),
    invariants: {
      'no GPU double-booked': { checks: samples, violations: shape.violations ?? 0 },
      'spend within budget': { checks: samples, violations: 0 },
    },
  };
}

function results(shapes: readonly PolicyShape[], samples: number): SimulationResults {
  return {
    workload: 'diurnal',
    seed: 7,
    hours: (samples * SAMPLE_MS) / 3_600_000,
    scale: 1,
    startMs: START_MS,
    results: shapes.map((s) => policyResult(s, samples)),
  };
}

const hostile = 'spot-first <b>"cheap"</b> & co';
const shapes: PolicyShape[] = [
  { name: 'on-demand', costUsd: 1234.567, headroom: 2 },
  { name: hostile, costUsd: 812.3, headroom: 0, violations: 3 },
  { name: 'mip', costUsd: 990, headroom: 1 },
];
const small = results(shapes, 100);

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

describe('renderReport', () => {
  it('renders one self-contained page: no scripts, no external references, a chart per GPU type and six more', async () => {
    const html = await renderReport(small);
    expect(count(html, '<html')).toBe(1);
    expect(count(html, '</html>')).toBe(1);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(count(html, '<svg')).toBeGreaterThanOrEqual(GPUS.length + 6);
    expect(count(html, '<svg')).toBe(count(html, '</svg>'));
    expect(html).not.toMatch(/<script|<link|<img|<iframe/i);
    const withoutNamespaces = html
      .replaceAll('xmlns="http://www.w3.org/2000/svg"', '')
      .replaceAll('xmlns:xlink="http://www.w3.org/1999/xlink"', '');
    expect(withoutNamespaces).not.toMatch(/https?:\/\//);
    for (const gpu of GPUS) expect(html).toContain(gpu);
  });

  it('states the workload, seed, hours, scale and start date in the title', async () => {
    const html = await renderReport(small);
    const header = html.slice(html.indexOf('<header>'), html.indexOf('</header>'));
    expect(header).toContain('diurnal');
    expect(header).toContain('seed 7');
    expect(header).toMatch(/8\.3 h simulated/);
    expect(header).toContain('scale 1');
    expect(header).toContain('2025-01-06 08:00 UTC');
  });

  it('escapes the policy names and shows each policy’s cost', async () => {
    const html = await renderReport(small);
    expect(html).not.toContain('<b>');
    expect(html).toContain(escapeHtml(hostile));
    expect(escapeHtml(hostile)).toBe('spot-first &lt;b&gt;&quot;cheap&quot;&lt;/b&gt; &amp; co');
    for (const cost of ['$1,234.57', '$812.30', '$990.00']) expect(html).toContain(cost);
  });

  it('highlights invariant violations, only where there are some', async () => {
    const html = await renderReport(small);
    expect(html).toContain('class="alert"');
    expect(html).toMatch(/<td class="violation">3 \(no GPU double-booked ×3\)<\/td>/);
    const clean = await renderReport(results([shapes[0] as PolicyShape, shapes[2] as PolicyShape], 100));
    expect(clean).not.toContain('class="violation"');
    expect(clean).not.toContain('class="alert"');
  });

  it('draws one demand line when every policy saw the same demand, one per policy otherwise', async () => {
    expect(count(await renderReport(small), '>demand</text>')).toBe(GPUS.length);
    const [first, ...rest] = small.results as [PolicyResult, ...PolicyResult[]];
    const busier: PolicyResult = {
      ...first,
      series: {
        ...first.series,
        byGpu: Object.fromEntries(
          Object.entries(first.series.byGpu).map(([gpu, s]) => [
            gpu,
            { ...s, demandGpus: s.demandGpus.map((d) => d + 1) },
          ]),
        ),
      },
    };
    const html = await renderReport({ ...small, results: [busier, ...rest] });
    expect(html).not.toContain('>demand</text>');
    expect(count(html, '>demand · on-demand</text>')).toBe(GPUS.length);
    expect(count(html, '>demand · mip</text>')).toBe(GPUS.length);
  });

  it('gives every element id in the page its own name, and renders the same results to the same text', async () => {
    const html = await renderReport(small);
    const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
    expect(ids.length).toBeGreaterThan(0);
    expect(new Set(ids).size).toBe(ids.length);
    expect(await renderReport(small)).toBe(html);
  });

  it('keeps a 23-day run of three policies sampled every 5 minutes under 3 MB', async () => {
    const html = await renderReport(results(shapes, 6_600));
    expect(html.length).toBeLessThan(3_000_000);
  });
});

describe('writeReport', () => {
  it('writes report.html and results.json into a directory it creates', async () => {
    const root = await mkdtemp(join(tmpdir(), 'gpubroker-report-'));
    try {
      const files = await writeReport(join(root, 'nested', 'out'), small);
      expect(files).toEqual({
        html: join(root, 'nested', 'out', 'report.html'),
        json: join(root, 'nested', 'out', 'results.json'),
      });
      expect(await readFile(files.html, 'utf8')).toContain('<html');
      expect(JSON.parse(await readFile(files.json, 'utf8'))).toEqual(small);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
