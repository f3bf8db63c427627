/**
 * Vega-Lite charts rendered headless to SVG strings, for the console's pages and the simulation reports: the
 * browser receives finished SVG, no chart code. Vega loads on the first chart, not with the broker (it weighs
 * tens of megabytes, and most brokers never draw one).
 */
import type { TopLevelSpec } from 'vega-lite';

/**
 * Compiles a Vega-Lite spec and renders it headless to an SVG string. Vega numbers its clip paths with a
 * process-wide counter; they are renamed `${idPrefix}-1`, `-2`, … so that several charts inline in one page keep
 * their own clips and the same input renders to the same text.
 */
export async function renderSvg(spec: TopLevelSpec, idPrefix: string): Promise<string> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return scopeIds(await view.toSVG(), idPrefix);
  } finally {
    view.finalize();
  }
}

function scopeIds(svg: string, prefix: string): string {
  const renamed = new Map<string, string>();
  for (const [, id] of svg.matchAll(/\sid="([^"]+)"/g)) {
    if (id !== undefined && !renamed.has(id)) renamed.set(id, `${prefix}-${renamed.size + 1}`);
  }
  if (renamed.size === 0) return svg;
  return svg.replace(/(\sid="|url\(#|href="#)([^")]+)/g, (whole, lead: string, id: string) => {
    const to = renamed.get(id);
    return to === undefined ? whole : `${lead}${to}`;
  });
}
