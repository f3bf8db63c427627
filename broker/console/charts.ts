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

interface Series {
  readonly title: string;
  readonly rows: readonly Row[];
  /** The field that names each row's series (its colour). */
  readonly series: string;
  readonly value: string;
  readonly valueTitle: string;
  /** A d3-format string for the value axis. */
  readonly format?: string;
}

/** What every console chart shares: size, font, data, the value axis and one colour per series. */
function spec(
  options: Series,
  mark: { type: 'bar' | 'line'; tooltip?: boolean; point?: boolean },
  x: Record<string, unknown>,
  extra: { stack?: 'zero'; xOffset?: boolean } = {},
): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: options.title,
    width: WIDTH,
    height: HEIGHT,
    data: { values: [...options.rows] },
    mark,
    encoding: {
      x,
      ...(extra.xOffset ? { xOffset: { field: options.series, type: 'nominal' } } : {}),
      y: {
        field: options.value,
        type: 'quantitative',
        title: options.valueTitle,
        ...(extra.stack ? { stack: extra.stack } : {}),
        ...(options.format ? { axis: { format: options.format } } : {}),
      },
      color: { field: options.series, type: 'nominal', title: null },
    },
    config: { font: 'system-ui, sans-serif', background: 'transparent' },
  } as TopLevelSpec;
}

/** A time axis in the rows' order (oldest first), not sorted by label: 23:00 comes before 00:00 of the next day. */
const timeAxis = (field: string) => ({
  field,
  type: 'ordinal',
  title: null,
  sort: null,
  axis: { labelAngle: -40 },
});

/** Bars per category, grouped by series (target against ready, cost against revenue). */
export function groupedBars(options: Series & { readonly category: string }): TopLevelSpec {
  return spec(
    options,
    { type: 'bar', tooltip: true },
    { field: options.category, type: 'nominal', title: null, axis: { labelAngle: 0 } },
    { xOffset: true },
  );
}

/** Stacked bars over time (cost per day per GPU type). */
export function stackedBarsOverTime(options: Series & { readonly time: string }): TopLevelSpec {
  return spec(options, { type: 'bar' }, timeAxis(options.time), { stack: 'zero' });
}

/** Lines over time, one per series. */
export function linesOverTime(options: Series & { readonly time: string }): TopLevelSpec {
  return spec(options, { type: 'line', point: true }, timeAxis(options.time));
}
