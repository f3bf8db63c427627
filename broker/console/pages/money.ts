/**
 * Money: usage, cost, revenue and utilisation over time per GPU type (operator), or the tenant's own usage; and
 * invoices per tenant. The last 24 hours by hour, or the last 30 days by day (`?range=month`).
 */
import { html } from 'hono/html';
import { microsToUsd } from '../../../lib/money.ts';
import type { Principal } from '../../tokens.ts';
import type { ConsoleApi } from '../api.ts';
import { chart, linesOverTime, stackedBarsOverTime } from '../charts.ts';
import { hours, microUsd, percent, time } from '../format.ts';
import { cards, type Html, table } from '../layout.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export type MoneyRange = 'day' | 'month';

interface Bucket {
  readonly fromMs: number;
  readonly toMs: number;
  readonly label: string;
}

/** Whole hours (or UTC days) ending with the current one. */
function buckets(range: MoneyRange, nowMs: number): Bucket[] {
  const step = range === 'day' ? HOUR : DAY;
  const count = range === 'day' ? 24 : 30;
  const last = Math.floor(nowMs / step) * step;
  return Array.from({ length: count }, (_, i) => {
    const fromMs = last - (count - 1 - i) * step;
    const label = range === 'day' ? time(fromMs).slice(11, 16) : time(fromMs).slice(5, 10);
    return { fromMs, toMs: fromMs + step, label };
  });
}

const iso = (ms: number) => new Date(ms).toISOString();

export async function moneyPage(
  api: ConsoleApi,
  principal: Principal,
  nowMs: number,
  range: MoneyRange,
): Promise<Html> {
  const windows = buckets(range, nowMs);
  const rangeLinks = html`<p class="subtitle">${
    range === 'day'
      ? html`Last 24 hours · <a href="/money?range=month">last 30 days</a>`
      : html`<a href="/money?range=day">Last 24 hours</a> · last 30 days`
  }</p>`;
  const { invoices } = await api.get('/v1/invoices');
  const invoiceTable = table(
    ['tenant', 'month', 'status', 'price book', 'lines', 'total'],
    invoices.map(
      (i) =>
        html`<tr><td>${i.tenant}</td><td>${i.month}</td><td>${i.status}</td><td class="num">v${i.priceBookVersion}</td><td class="num">${i.lines.length}</td><td class="num">${microUsd(i.totalMicroUsd)}</td></tr>`,
    ),
    'No invoices yet: usage is billed per container-second and per leased GPU-second.',
  );
  if (principal.role !== 'operator') return tenantMoney(api, windows, rangeLinks, invoiceTable);

  const [reports, month] = await Promise.all([
    Promise.all(
      // A window ends now at the latest: the report counts running instances up to its end.
      windows.map((w) =>
        api.get('/v1/costs', { query: { from: iso(w.fromMs), to: iso(Math.min(w.toMs, nowMs)) } }),
      ),
    ),
    api.get('/v1/costs', { query: { from: iso(windows[0]?.fromMs ?? nowMs), to: iso(nowMs) } }),
  ]);
  const gpus = [...new Set(reports.flatMap((r) => r.byGpu.map((g) => g.gpu)))].sort();
  // Every window and GPU type, zero where nothing was held: the time axis shows the whole range.
  const rows = reports.flatMap((r, i) =>
    gpus
      .map((gpu) => r.byGpu.find((g) => g.gpu === gpu) ?? zero(gpu))
      .map((g) => ({
        at: windows[i]?.label ?? '',
        gpu: g.gpu,
        cost: microsToUsd(g.costMicroUsd),
        revenue: microsToUsd(g.revenueMicroUsd),
        utilization: g.utilization,
      })),
  );
  const [costChart, revenueChart, utilisationChart] =
    gpus.length === 0
      ? ['', '', '']
      : await Promise.all([
          chart(
            stackedBarsOverTime({
              title: 'Fleet cost per GPU type',
              rows,
              time: 'at',
              series: 'gpu',
              value: 'cost',
              valueTitle: 'USD',
              format: '$,.2f',
            }),
            'Fleet cost per GPU type over time',
          ),
          chart(
            stackedBarsOverTime({
              title: 'Revenue (billed usage) per GPU type',
              rows,
              time: 'at',
              series: 'gpu',
              value: 'revenue',
              valueTitle: 'USD',
              format: '$,.2f',
            }),
            'Revenue per GPU type over time',
          ),
          chart(
            linesOverTime({
              title: 'Utilisation: billed GPU-seconds over provisioned',
              rows,
              time: 'at',
              series: 'gpu',
              value: 'utilization',
              valueTitle: 'utilisation',
              format: '.1~%',
            }),
            'Utilisation per GPU type over time',
          ),
        ]);
  const t = month.total;
  return html`<h1>Money</h1>
${rangeLinks}
${cards([
  ['fleet cost', microUsd(t.costMicroUsd)],
  ['revenue', microUsd(t.revenueMicroUsd)],
  ['margin', microUsd(t.marginMicroUsd)],
  ['utilisation', percent(t.utilization)],
  ['GPU-hours billed', hours(t.billedGpuSeconds)],
])}
${costChart}
${revenueChart}
${utilisationChart}
<h2>Per GPU type</h2>
${table(
  ['GPU', 'GPU-hours held', 'GPU-hours billed', 'utilisation', 'cost', 'revenue', 'margin'],
  month.byGpu.map(
    (g) =>
      html`<tr><td>${g.gpu}</td><td class="num">${hours(g.provisionedGpuSeconds)}</td><td class="num">${hours(g.billedGpuSeconds)}</td><td class="num">${percent(g.utilization)}</td><td class="num">${microUsd(g.costMicroUsd)}</td><td class="num">${microUsd(g.revenueMicroUsd)}</td><td class="num">${microUsd(g.marginMicroUsd)}</td></tr>`,
  ),
  'Nothing held or billed in this window.',
)}
<h2>Invoices</h2>
${invoiceTable}`;
}

async function tenantMoney(
  api: ConsoleApi,
  windows: readonly Bucket[],
  rangeLinks: Html,
  invoiceTable: Html,
) {
  const usage = await Promise.all(
    windows.map((w) =>
      api.get('/v1/usage', { query: { from: iso(w.fromMs), to: iso(w.toMs), groupBy: 'gpu' } }),
    ),
  );
  const gpus = [...new Set(usage.flatMap((u) => u.rows.map((r) => r.key)))].sort();
  const rows = usage.flatMap((u, i) =>
    gpus.map((gpu) => ({
      at: windows[i]?.label ?? '',
      gpu,
      usd: microsToUsd(u.rows.filter((r) => r.key === gpu).reduce((sum, r) => sum + r.amountMicroUsd, 0)),
    })),
  );
  const total = usage.reduce((sum, u) => sum + u.totalMicroUsd, 0);
  const gpuSeconds = usage.reduce((sum, u) => sum + u.totalGpuSeconds, 0);
  const usageChart =
    gpus.length === 0
      ? ''
      : await chart(
          stackedBarsOverTime({
            title: 'Your usage per GPU type',
            rows,
            time: 'at',
            series: 'gpu',
            value: 'usd',
            valueTitle: 'USD',
            format: '$,.2f',
          }),
          'Usage per GPU type over time',
        );
  return html`<h1>Money</h1>
${rangeLinks}
${cards([
  ['usage', microUsd(total)],
  ['GPU-hours', hours(gpuSeconds)],
])}
${usageChart || html`<p class="empty">No usage in this window.</p>`}
<h2>Invoices</h2>
${invoiceTable}`;
}

function zero(gpu: string) {
  return {
    gpu,
    provisionedGpuSeconds: 0,
    billedGpuSeconds: 0,
    utilization: 0,
    costMicroUsd: 0,
    revenueMicroUsd: 0,
    marginMicroUsd: 0,
  };
}
