/**
 * The console's charts as Vega-Lite specs, rendered on the server to SVG (vega-svg.ts): the page gets finished
 * pictures that refresh with the page, and no chart library runs in the browser.
 */
import { raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import type { TopLevelSpec } from 'vega-lite';
import { renderSvg } from './vega-svg.ts';

const WIDTH = 560;
const HEIGHT = 180;

let charts = 0;

export async function chart(spec: TopLevelSpec, label: string): Promise<HtmlEscapedString> {
  const svg = await renderSvg(spec, `c${++charts}`);
  return raw(`<figure class="chart" aria-label="${label.replace(/[^\w\s·,-]/g, '')}">${svg}</figure>`);
}

type Row = Record<string, string | number>;

/** Bars per category, grouped by series (target against ready, cost against revenue). */
export function groupedBars(options: {
  readonly title: string;
  readonly rows: readonly Row[];
  readonly category: string;
  readonly series: string;
  readonly value: string;
  readonly valueTitle: string;
}): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: options.title,
    width: WIDTH,
    height: HEIGHT,
    data: { values: [...options.rows] },
    mark: { type: 'bar', tooltip: true },
    encoding: {
      x: { field: options.category, type: 'nominal', title: null, axis: { labelAngle: 0 } },
      xOffset: { field: options.series, type: 'nominal' },
      y: { field: options.value, type: 'quantitative', title: options.valueTitle },
      color: { field: options.series, type: 'nominal', title: null },
    },
    config: { font: 'system-ui, sans-serif', background: 'transparent' },
  };
}

/** Stacked bars over time (cost per day per GPU type). */
export function stackedBarsOverTime(options: {
  readonly title: string;
  readonly rows: readonly Row[];
  readonly time: string;
  readonly series: string;
  readonly value: string;
  readonly valueTitle: string;
  readonly format?: string;
}): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: options.title,
    width: WIDTH,
    height: HEIGHT,
    data: { values: [...options.rows] },
    mark: { type: 'bar' },
    encoding: {
      // In the rows' order (oldest first), not sorted by label: 23:00 comes before 00:00 of the next day.
      x: { field: options.time, type: 'ordinal', title: null, sort: null, axis: { labelAngle: -40 } },
      y: {
        field: options.value,
        type: 'quantitative',
        title: options.valueTitle,
        stack: 'zero',
        ...(options.format ? { axis: { format: options.format } } : {}),
      },
      color: { field: options.series, type: 'nominal', title: null },
    },
    config: { font: 'system-ui, sans-serif', background: 'transparent' },
  };
}

/** Lines over time, one per series. */
export function linesOverTime(options: {
  readonly title: string;
  readonly rows: readonly Row[];
  readonly time: string;
  readonly timeType?: 'ordinal' | 'temporal';
  readonly series: string;
  readonly value: string;
  readonly valueTitle: string;
  readonly format?: string;
}): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: options.title,
    width: WIDTH,
    height: HEIGHT,
    data: { values: [...options.rows] },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: options.time,
        type: options.timeType ?? 'ordinal',
        title: null,
        ...(options.timeType === 'temporal' ? {} : { sort: null, axis: { labelAngle: -40 } }),
      },
      y: {
        field: options.value,
        type: 'quantitative',
        title: options.valueTitle,
        ...(options.format ? { axis: { format: options.format } } : {}),
      },
      color: { field: options.series, type: 'nominal', title: null },
    },
    config: { font: 'system-ui, sans-serif', background: 'transparent' },
  };
}
