/**
 * Policy (operator): the policy and the price book in force with every earlier version and what each changed, the
 * tenants' limits, and the audit log (token creations and limit changes: who, when, what).
 */
import { html } from 'hono/html';
import { microsToUsd, perHourRate } from '../../../lib/money.ts';
import type { ConsoleApi } from '../api.ts';
import { time, usdPerHour } from '../format.ts';
import { type Html, table } from '../layout.ts';

interface Versioned {
  readonly version: number;
  readonly createdAtMs: number;
  readonly createdBy: string;
  readonly diff: readonly { readonly path: string; readonly from?: unknown; readonly to?: unknown }[];
}

const shown = (value: unknown) => (value === undefined ? '–' : JSON.stringify(value));
const limit = (value: number | null, unit = '') => (value === null ? 'none' : `${value}${unit}`);

function history(versions: readonly Versioned[], empty: string): Html {
  return table(
    ['version', 'when', 'by', 'changed'],
    versions.map(
      (v) =>
        html`<tr><td class="num">v${v.version}</td><td>${time(v.createdAtMs)}</td><td>${v.createdBy}</td><td>${
          v.diff.length === 0
            ? html`<span class="empty">first version</span>`
            : html`<ul class="diff">${v.diff.map(
                (d) =>
                  html`<li><code>${d.path}</code>: <del>${shown(d.from)}</del> → <ins>${shown(d.to)}</ins></li>`,
              )}</ul>`
        }</td></tr>`,
    ),
    empty,
  );
}

export async function policyPage(api: ConsoleApi): Promise<Html> {
  const [policy, policies, prices, priceHistory, { tenants }, { events }] = await Promise.all([
    api.get('/v1/policy'),
    api.get('/v1/policy/history'),
    api.get('/v1/prices'),
    api.get('/v1/prices/history'),
    api.get('/v1/tenants'),
    api.get('/v1/audit', { query: { limit: 50 } }),
  ]);
  return html`<h1>Policy</h1>
<h2>Policy in force <small>v${policy.version}, ${time(policy.createdAtMs)} by ${policy.createdBy}</small></h2>
<pre class="json">${JSON.stringify(policy.policy, null, 2)}</pre>
<h2>Policy history</h2>
${history(policies.versions, 'No policy versions yet.')}
<h2>Price book in force <small>v${prices.version}</small></h2>
${table(
  ['GPU', 'price per GPU-hour'],
  Object.entries(prices.gpuRates).map(
    ([gpu, micros]) =>
      html`<tr><td>${gpu}</td><td class="num">${usdPerHour(microsToUsd(perHourRate(micros)))}</td></tr>`,
  ),
  'No GPU rates.',
)}
<h2>Price book history</h2>
${history(priceHistory.versions, 'No price book versions yet.')}
<h2>Tenants and limits</h2>
${table(
  ['tenant', 'since', 'GPU quota', 'spend per hour', 'spend per month', 'at the limit'],
  tenants.map(
    (t) =>
      html`<tr><td>${t.name}</td><td>${time(t.createdAtMs)}</td><td class="num">${limit(t.gpuQuota)}</td><td class="num">${
        t.spendLimitUsdPerHour === null ? 'none' : `$${t.spendLimitUsdPerHour}`
      }</td><td class="num">${t.spendLimitUsdPerMonth === null ? 'none' : `$${t.spendLimitUsdPerMonth}`}</td><td>${t.onSpendLimit}</td></tr>`,
  ),
  'No tenants.',
)}
<h2>Audit log</h2>
${table(
  ['when', 'who', 'what', 'subject', 'detail'],
  events.map(
    (e) =>
      html`<tr><td>${time(e.atMs)}</td><td>${e.actor}</td><td><code>${e.action}</code></td><td>${e.subject}</td><td><code>${JSON.stringify(e.detail)}</code></td></tr>`,
  ),
  'No tokens made and no limits changed yet.',
)}`;
}
