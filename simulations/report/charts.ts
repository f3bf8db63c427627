/**
 * The report's chart kinds as Vega-Lite specs, and their headless rendering to SVG. Nothing here knows about
 * simulations: callers hand in named, coloured series.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { Point } from './downsample.ts';

// The report and the console render their charts alike.
export { renderSvg } from '../../broker/console/vega-svg.ts';

export interface Line {
  /** The legend entry. */
  readonly series: string;
  readonly color: string;
  readonly dashed: boolean;
  readonly points: readonly Point[];
}

export interface Axis {
  readonly title: string;
  readonly log?: boolean;
  /** A d3-format string for the tick labels. */
  readonly format?: string;
  /** Fixed ends of a linear axis; otherwise fitted to the data. */
  readonly domain?: readonly [number, number];
  /** Counts: ticks at whole numbers only. */
  readonly integer?: boolean;
}

export interface LineChart {
  readonly title: string;
  readonly x: Axis;
  readonly y: Axis;
  readonly lines: readonly Line[];
  /** `step-after` for counts sampled over time and for CDFs. */
  readonly interpolate: 'linear' | 'step-after';
  readonly width: number;
  readonly height: number;
}

/** One value per category, each category its own colour. */
export interface Bars {
  readonly title: string;
  readonly y: Axis;
  readonly bars: readonly {
    readonly label: string;
    readonly color: string;
    readonly value: number;
    readonly text: string;
  }[];
}

/** One labelled point per category. */
export interface Scatter {
  readonly title: string;
  readonly x: Axis;
  readonly y: Axis;
  readonly points: readonly {
    readonly label: string;
    readonly color: string;
    readonly x: number;
    readonly y: number;
  }[];
}

const config = {
  font: 'system-ui, -apple-system, "Segoe UI", sans-serif',
  title: { anchor: 'start', fontSize: 13, fontWeight: 600 },
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 10, titleFontSize: 11, titleFontWeight: 500, gridColor: '#eee' },
  legend: { labelFontSize: 10, labelLimit: 260, symbolSize: 60 },
} as const;

function quantitative(field: string, axis: Axis, zero: boolean) {
  return {
    field,
    type: 'quantitative',
    title: axis.title,
    scale: axis.log ? { type: 'log' as const } : axis.domain ? { domain: [...axis.domain] } : { zero },
    axis: {
      ...(axis.format ? { format: axis.format } : {}),
      ...(axis.integer ? { tickMinStep: 1, format: axis.format ?? 'd' } : {}),
    },
  } as const;
}

function colorScale(entries: readonly { readonly name: string; readonly color: string }[]) {
  return { domain: entries.map((e) => e.name), range: entries.map((e) => e.color) };
}

export function lineChartSpec(chart: LineChart): TopLevelSpec {
  const values = chart.lines.flatMap((line) =>
    line.points.map((p) => ({ series: line.series, dash: line.dashed ? 'dashed' : 'solid', x: p.x, y: p.y })),
  );
  return {
    title: chart.title,
    width: chart.width,
    height: chart.height,
    config,
    data: { values },
    mark: { type: 'line', interpolate: chart.interpolate, strokeWidth: 1.5, clip: true },
    encoding: {
      x: quantitative('x', chart.x, false),
      y: quantitative('y', chart.y, !chart.y.log),
      color: {
        field: 'series',
        type: 'nominal',
        title: null,
        scale: colorScale(chart.lines.map((l) => ({ name: l.series, color: l.color }))),
        legend: { orient: 'bottom', direction: 'horizontal', columns: 3 },
      },
      strokeDash: {
        field: 'dash',
        type: 'nominal',
        scale: {
          domain: ['solid', 'dashed'],
          range: [
            [1, 0],
            [5, 3],
          ],
        },
        legend: null,
      },
    },
  };
}

export function barChartSpec(chart: Bars): TopLevelSpec {
  const color = colorScale(chart.bars.map((b) => ({ name: b.label, color: b.color })));
  return {
    title: chart.title,
    width: { step: 56 },
    height: 220,
    config,
    data: { values: chart.bars.map((b) => ({ label: b.label, value: b.value, text: b.text })) },
    encoding: {
      x: {
        field: 'label',
        type: 'nominal',
        title: null,
        sort: null,
        axis: { labelAngle: -30, labelLimit: 160 },
      },
      y: quantitative('value', chart.y, true),
    },
    layer: [
      { mark: 'bar', encoding: { color: { field: 'label', type: 'nominal', scale: color, legend: null } } },
      {
        mark: { type: 'text', baseline: 'bottom', dy: -3, fontSize: 10 },
        encoding: { text: { field: 'text', type: 'nominal' } },
      },
    ],
  };
}

export function scatterSpec(chart: Scatter): TopLevelSpec {
  const color = colorScale(chart.points.map((p) => ({ name: p.label, color: p.color })));
  return {
    title: chart.title,
    width: 420,
    height: 260,
    config,
    data: { values: chart.points.map((p) => ({ label: p.label, x: p.x, y: p.y })) },
    encoding: { x: quantitative('x', chart.x, false), y: quantitative('y', chart.y, false) },
    layer: [
      {
        mark: { type: 'point', filled: true, size: 90, opacity: 1 },
        encoding: { color: { field: 'label', type: 'nominal', scale: color, legend: null } },
      },
      {
        mark: { type: 'text', align: 'left', dx: 8, fontSize: 11 },
        encoding: { text: { field: 'label', type: 'nominal' } },
      },
    ],
  };
}
