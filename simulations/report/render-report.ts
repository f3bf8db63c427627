/**
 * The simulation report: one self-contained HTML page (inline CSS, inline SVG, no scripts, no external URLs)
 * with the headline figures per policy and the charts, rendered only from `SimulationResults`.
 */

import type { TopLevelSpec } from 'vega-lite';
import { sameElements } from '../../lib/arrays.ts';
import type { PolicyResult, SimulationResults } from '../results.ts';
import { type Axis, barChartSpec, type Line, lineChartSpec, renderSvg, scatterSpec } from './charts.ts';
import { downsample } from './downsample.ts';

/** Keeps a 23-day run sampled every 5 minutes (6,600 samples) to a few hundred kB of SVG. */
const MAX_POINTS_PER_LINE = 500;
/** Tableau 10: one colour per policy, the same in every chart. */
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];
const DEMAND_COLOR = '#222222';
/** A value range at least this wide (max / min) is drawn on a log axis. */
const LOG_RANGE = 100;

interface Figure {
  readonly spec: TopLevelSpec;
  readonly caption: string;
}

export async function renderReport(results: SimulationResults): Promise<string> {
  const context = new ReportContext(results);
  const sections: { title: string; figures: Figure[] }[] = [
    {
      title: 'Demand vs provisioned GPUs',
      figures: gpuTypes(results).map((gpu) => demandFigure(context, gpu)),
    },
    { title: 'Cost', figures: [costFigure(context), costVsWaitFigure(context)] },
    { title: 'Waiting', figures: [waitCdfFigure(context), unmetFigure(context)] },
    {
      title: 'Utilisation and preemptions',
      figures: [utilisationFigure(context), preemptionsFigure(context)],
    },
  ];
  let chart = 0;
  const body: string[] = [];
  for (const section of sections) {
    const figures: string[] = [];
    for (const figure of section.figures) {
      chart += 1;
      const svg = await renderSvg(figure.spec, `chart${chart}`);
      figures.push(`<figure>${svg}<figcaption>${escapeHtml(figure.caption)}</figcaption></figure>`);
    }
    body.push(
      `<section><h2>${escapeHtml(section.title)}</h2><div class="grid">${figures.join('')}</div></section>`,
    );
  }
  return page(results, [headlineSection(results), invariantSection(results), ...body]);
}

/** Escapes text for HTML element content and double- or single-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

const ENTITIES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** What every chart shares: the policies' colours and the time axis. */
class ReportContext {
  readonly policies: readonly PolicyResult[];
  readonly time: Axis;
  private readonly colors = new Map<string, string>();
  private readonly unitMs: number;

  constructor(readonly results: SimulationResults) {
    this.policies = results.results;
    this.policies.forEach((p, i) => {
      this.colors.set(p.policy, PALETTE[i % PALETTE.length] as string);
    });
    const days = results.hours > 72;
    this.unitMs = days ? 86_400_000 : 3_600_000;
    this.time = { title: days ? 'days since start' : 'hours since start' };
  }

  color(policy: PolicyResult): string {
    return this.colors.get(policy.policy) ?? DEMAND_COLOR;
  }

  /**
   * One downsampled line of a policy's time series. `tMs` is virtual-clock time from `startMs` on; a series
   * whose first sample lies before `startMs` is read as offsets from the start.
   */
  line(
    policy: PolicyResult,
    series: string,
    color: string,
    dashed: boolean,
    values: readonly number[],
  ): Line {
    const { tMs } = policy.series;
    const origin = (tMs[0] ?? 0) >= this.results.startMs ? this.results.startMs : 0;
    const xs = tMs.map((t) => (t - origin) / this.unitMs);
    return { series, color, dashed, points: downsample(xs, values, MAX_POINTS_PER_LINE) };
  }

  policyLines(values: (p: PolicyResult) => readonly number[]): Line[] {
    return this.policies.map((p) => this.line(p, p.policy, this.color(p), false, values(p)));
  }
}

function gpuTypes(results: SimulationResults): string[] {
  return [...new Set(results.results.flatMap((p) => Object.keys(p.series.byGpu)))].sort();
}

/** (1) Per GPU type: provisioned GPUs per policy against demand; one demand line when every policy saw the same. */
function demandFigure(context: ReportContext, gpu: string): Figure {
  const holding = context.policies.flatMap((p) => {
    const series = p.series.byGpu[gpu];
    return series === undefined ? [] : [{ p, series }];
  });
  const first = holding[0];
  const sameDemand =
    first !== undefined &&
    holding.every(
      ({ p, series }) =>
        sameElements(p.series.tMs, first.p.series.tMs) &&
        sameElements(series.demandGpus, first.series.demandGpus),
    );
  const demand =
    sameDemand && first !== undefined
      ? [context.line(first.p, 'demand', DEMAND_COLOR, true, first.series.demandGpus)]
      : holding.map(({ p, series }) =>
          context.line(p, `demand · ${p.policy}`, context.color(p), true, series.demandGpus),
        );
  const provisioned = holding.map(({ p, series }) =>
    context.line(p, p.policy, context.color(p), false, series.provisionedGpus),
  );
  return {
    spec: lineChartSpec({
      title: gpu,
      x: context.time,
      y: { title: 'GPUs' },
      lines: [...demand, ...provisioned],
      interpolate: 'step-after',
      width: 380,
      height: 170,
    }),
    caption: `${gpu}: GPUs provisioned per policy (solid) against GPUs demanded, running plus queued (dashed).`,
  };
}

/** (2) */
function costFigure(context: ReportContext): Figure {
  return {
    spec: lineChartSpec({
      title: 'Cumulative cost',
      x: context.time,
      y: { title: 'USD', format: '$,.0f' },
      lines: context.policyLines((p) => p.series.costUsd),
      interpolate: 'linear',
      width: 460,
      height: 220,
    }),
    caption: 'Fleet cost so far (instance time × price) per policy.',
  };
}

/** (3) */
function waitCdfFigure(context: ReportContext): Figure {
  const seconds = context.policies.flatMap((p) => p.waitCdf.map((c) => c.ms / 1000));
  const positive = seconds.filter((s) => s > 0);
  const log = isWide(positive) && positive.length > 0;
  const floor = log ? Math.min(...positive) : 0;
  const zeroes = log && positive.length < seconds.length;
  const lines = context.policies
    .filter((p) => p.waitCdf.length > 0)
    .map((p) => ({
      series: p.policy,
      color: context.color(p),
      dashed: false,
      points: downsample(
        p.waitCdf.map((c) => Math.max(c.ms / 1000, floor)),
        p.waitCdf.map((c) => c.fraction),
        MAX_POINTS_PER_LINE,
      ),
    }));
  return {
    spec: lineChartSpec({
      title: 'Wait-time CDF',
      x: { title: log ? 'wait (s, log scale)' : 'wait (s)', log },
      y: { title: 'share of requests waiting ≤ x', format: '.0%' },
      lines,
      interpolate: 'step-after',
      width: 460,
      height: 220,
    }),
    caption:
      'From a request’s arrival to its start, per policy.' +
      (zeroes ? ` Waits of 0 are drawn at ${formatDuration(floor * 1000)}.` : ''),
  };
}

/** (4) */
function utilisationFigure(context: ReportContext): Figure {
  return {
    spec: barChartSpec({
      title: 'Utilisation',
      y: {
        title: 'GPU-hours used / provisioned (%)',
        domain: [0, Math.max(100, ...context.policies.map((p) => p.utilization * 100))],
      },
      bars: context.policies.map((p) => ({
        label: p.paretoFrontier ? `${p.policy} ★` : p.policy,
        color: context.color(p),
        value: p.utilization * 100,
        text: formatPercent(p.utilization),
      })),
    }),
    caption: 'GPU-hours of running containers and leases over GPU-hours provisioned.',
  };
}

/** (5) */
function preemptionsFigure(context: ReportContext): Figure {
  // Whole numbers, from 0 to at least 1: with none at all the axis reads 0 and 1, not 0.000000.
  const most = context.policies.reduce((m, p) => p.series.preemptions.reduce((a, b) => Math.max(a, b), m), 0);
  return {
    spec: lineChartSpec({
      title: 'Cumulative spot preemptions',
      x: context.time,
      y: { title: 'preemptions', integer: true, domain: [0, Math.max(1, most)] },
      lines: context.policyLines((p) => p.series.preemptions),
      interpolate: 'step-after',
      width: 460,
      height: 220,
    }),
    caption: 'Spot instances reclaimed by the cloud so far, per policy.',
  };
}

/** (6) */
function unmetFigure(context: ReportContext): Figure {
  return {
    spec: lineChartSpec({
      title: 'Unmet GPUs',
      x: context.time,
      y: { title: 'GPUs' },
      lines: context.policyLines((p) => p.series.unmetGpus),
      interpolate: 'step-after',
      width: 460,
      height: 220,
    }),
    caption: 'GPUs demanded but not served at each sample, per policy.',
  };
}

/** (7) */
function costVsWaitFigure(context: ReportContext): Figure {
  const p99s = context.policies.map((p) => p.waitMs.p99 / 1000);
  const log = p99s.every((s) => s > 0) && isWide(p99s);
  return {
    spec: scatterSpec({
      title: 'Cost vs p99 wait',
      x: { title: log ? 'p99 wait (s, log scale)' : 'p99 wait (s)', log },
      y: { title: 'cost (USD)', format: '$,.0f' },
      points: context.policies.map((p) => ({
        label: p.policy,
        color: context.color(p),
        x: p.waitMs.p99 / 1000,
        y: p.costUsd,
      })),
    }),
    caption:
      'Each policy’s total cost against its 99th-percentile wait: lower left is better; ★ marks the Pareto frontier (no other policy is both cheaper and faster).',
  };
}

function isWide(values: readonly number[]): boolean {
  if (values.length === 0) return false;
  const min = Math.min(...values);
  return min > 0 && Math.max(...values) / min >= LOG_RANGE;
}

function headlineSection(results: SimulationResults): string {
  const head = [
    'Policy',
    'Cost',
    'GPU-h provisioned',
    'GPU-h used',
    'Utilisation',
    'Wait p50',
    'Wait p95',
    'Wait p99',
    'Waits',
    'Pareto frontier',
    'Requests',
    'Cold starts',
    'Preemptions',
    'Unmet GPU-h',
    'Wall time',
    'Wall share solver / runtime / meter',
    'Invariant violations',
  ];
  const rows = results.results.map((p) => {
    const { checks, violations, violated } = invariantTotals(p);
    const violationCell =
      violations > 0
        ? `<td class="violation">${formatInteger(violations)} (${escapeHtml(violated.join(', '))})</td>`
        : `<td>0 <span class="muted">of ${formatInteger(checks)} checks</span></td>`;
    const cells = [
      formatUsd(p.costUsd),
      formatFixed(p.gpuHoursProvisioned, 1),
      formatFixed(p.gpuHoursUsed, 1),
      formatPercent(p.utilization),
      formatDuration(p.waitMs.p50),
      formatDuration(p.waitMs.p95),
      formatDuration(p.waitMs.p99),
      `${formatInteger(p.waitSamples)}${p.caveat ? ' (few)' : ''}`,
      p.paretoFrontier ? '★ yes' : 'no',
      formatInteger(p.requests),
      formatInteger(p.coldStarts),
      formatInteger(p.preemptions),
      formatFixed(p.unmetGpuHours, 1),
      formatDuration(p.wallMs),
      [p.wallShare.solver, p.wallShare.runtime, p.wallShare.meter].map(formatPercent).join(' / '),
    ];
    return (
      `<tr${violations > 0 ? ' class="violated"' : ''}><th scope="row">${escapeHtml(p.policy)}</th>` +
      `${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}${violationCell}</tr>`
    );
  });
  const frontier = results.results.filter((p) => p.paretoFrontier).map((p) => p.policy);
  const caveats = results.results.filter((p) => p.caveat);
  const notes =
    `<p>Pareto frontier (cost against p99 wait): ${escapeHtml(frontier.join(', ') || 'none')}.</p>` +
    (caveats.length > 0
      ? `<p class="alert">Few samples: ${caveats.map((p) => `${escapeHtml(p.policy)}: ${escapeHtml(p.caveat ?? '')}`).join('; ')}.</p>`
      : '');
  return (
    `<section><h2>Headline figures</h2><div class="scroll"><table><thead><tr>` +
    `${head.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table></div>${notes}</section>`
  );
}

/** Every invariant × policy: violations of checks, violations highlighted. */
function invariantSection(results: SimulationResults): string {
  const names = [...new Set(results.results.flatMap((p) => Object.keys(p.invariants)))].sort();
  if (names.length === 0) return '';
  const rows = names.map((name) => {
    const cells = results.results.map((p) => {
      const counts = p.invariants[name];
      if (counts === undefined) return '<td class="muted">–</td>';
      const text = `${formatInteger(counts.violations)} of ${formatInteger(counts.checks)}`;
      return `<td${counts.violations > 0 ? ' class="violation"' : ''}>${escapeHtml(text)}</td>`;
    });
    return `<tr><th scope="row">${escapeHtml(name)}</th>${cells.join('')}</tr>`;
  });
  const offenders = results.results.filter((p) => invariantTotals(p).violations > 0);
  const alert =
    offenders.length > 0
      ? `<p class="alert">Invariants violated under ${escapeHtml(offenders.map((p) => p.policy).join(', '))}.</p>`
      : '';
  return (
    `<section><h2>Invariants</h2>${alert}<p class="muted">Violations of checks made while running.</p>` +
    `<div class="scroll"><table><thead><tr><th scope="col">Invariant</th>` +
    `${results.results.map((p) => `<th scope="col">${escapeHtml(p.policy)}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table></div></section>`
  );
}

function invariantTotals(p: PolicyResult): { checks: number; violations: number; violated: string[] } {
  let checks = 0;
  let violations = 0;
  const violated: string[] = [];
  for (const [name, counts] of Object.entries(p.invariants)) {
    checks += counts.checks;
    violations += counts.violations;
    if (counts.violations > 0) violated.push(`${name} ×${formatInteger(counts.violations)}`);
  }
  return { checks, violations, violated: violated.sort() };
}

function page(results: SimulationResults, sections: readonly string[]): string {
  const start = Number.isFinite(results.startMs)
    ? `${new Date(results.startMs).toISOString().slice(0, 16).replace('T', ' ')} UTC`
    : 'unknown start';
  const title = `Simulation: ${results.workload}`;
  const meta = [
    `seed ${results.seed}`,
    `${formatFixed(results.hours, results.hours % 1 === 0 ? 0 : 1)} h simulated`,
    `scale ${results.scale}`,
    `from ${start}`,
    `${results.results.length} ${results.results.length === 1 ? 'policy' : 'policies'}`,
  ].join(' · ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(`gpubroker ${title} (seed ${results.seed})`)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(title)}</h1><p class="meta">${escapeHtml(meta)}</p></header>
<main>
${sections.filter((s) => s !== '').join('\n')}
</main>
</body>
</html>
`;
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d1d1f;margin:0 auto;padding:24px;max-width:1280px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #e5e5e5;padding-bottom:4px}
.meta,.muted{color:#6b6b6b}.scroll{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
thead th{font-weight:600;font-size:12px;color:#444;vertical-align:bottom;white-space:normal}
tbody th{text-align:left;font-weight:600}
td.violation{background:#fde2e1;color:#a50e0e;font-weight:600}
tr.violated th{color:#a50e0e}
.alert{background:#fde2e1;color:#a50e0e;padding:8px 12px;border-radius:4px;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:16px 28px;align-items:flex-start}
figure{margin:0}figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#6b6b6b;max-width:460px;margin-top:4px}
`.trim();

function formatFixed(value: number, digits: number): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function formatInteger(value: number): string {
  return formatFixed(value, 0);
}

function formatUsd(value: number): string {
  return `${value < 0 ? '-' : ''}$${formatFixed(Math.abs(value), 2)}`;
}

function formatPercent(share: number): string {
  return `${formatFixed(share * 100, 1)} %`;
}

function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  const abs = Math.abs(ms);
  if (abs < 1_000) return `${formatFixed(ms, abs < 10 ? 2 : abs < 100 ? 1 : 0)} ms`;
  if (abs < 60_000) return `${formatFixed(ms / 1_000, 2)} s`;
  if (abs < 3_600_000) return `${formatFixed(ms / 60_000, 1)} min`;
  return `${formatFixed(ms / 3_600_000, 2)} h`;
}
