/**
 * Plans (operator): "why did we buy this?" on one page. The chosen plan (the latest, or `?id=`) with its cost and
 * optimality gap, the explanation (binding constraints and their marginal costs), the pools it holds, what it
 * launched and terminated, the demand it was made for and what it could not meet; the recent plans' cost.
 */
import { html } from 'hono/html';
import type { ConsoleApi } from '../api.ts';
import { chart, linesOverTime } from '../charts.ts';
import { percent, time, usdPerHour } from '../format.ts';
import { badge, cards, type Html, table } from '../layout.ts';

export async function plansPage(api: ConsoleApi, id: string | undefined): Promise<Html> {
  const { plans } = await api.get('/v1/plans', { query: { limit: 50 } });
  if (plans.length === 0)
    return html`<h1>Plans</h1><p class="empty">No plan yet: the control loop makes one at its first tick.</p>`;
  // An unknown id is the API's 404, which the page frame shows as a notice.
  const plan = id ? await api.get('/v1/plans/{id}', { params: { id } }) : await api.get('/v1/plans/latest');
  const history = [...plans].reverse();
  const costChart = await chart(
    linesOverTime({
      title: 'Recent plans',
      rows: history.flatMap((p) => [
        { at: time(p.createdAtMs).slice(11), series: 'cost $/h', value: p.usdPerHour },
        { at: time(p.createdAtMs).slice(11), series: 'unmet GPUs', value: p.unmetGpus },
      ]),
      time: 'at',
      series: 'series',
      value: 'value',
      valueTitle: '$/h · GPUs',
    }),
    'Cost per hour and unmet GPUs of the recent plans',
  );
  const firstPeriod = (gpus: readonly number[]) => gpus[0] ?? 0;

  return html`<h1>Plan <code>${plan.id}</code></h1>
<p class="subtitle">Made ${time(plan.createdAtMs)} under policy version ${plan.policyVersion}, solved by ${plan.backend} in ${plan.solveMs} ms.</p>
${cards([
  ['status', plan.status],
  ['cost', usdPerHour(plan.usdPerHour)],
  ['gap to the bound', percent(plan.objective.gap)],
  ['launched', String(plan.provision)],
  ['terminated', String(plan.terminate)],
  ['unmet GPUs', String(plan.unmetGpus)],
])}
<h2>Why this plan</h2>
${table(
  ['constraint', 'kind', 'marginal cost', 'binding', 'what it means'],
  plan.explanation.map(
    (e) =>
      html`<tr><td><code>${e.constraint}</code></td><td>${e.kind}</td><td class="num">${usdPerHour(e.marginalUsdPerHour)}</td><td>${
        e.bindingAtPlan ? badge('binding', 'warn') : badge('slack', 'idle')
      }</td><td>${e.text}</td></tr>`,
  ),
  'Nothing constrained this plan: it holds what demand and the buffer need at the cheapest offerings.',
)}
<h2>Pools held</h2>
${table(
  ['offering', 'vendor', 'region', 'instance type', 'capacity', 'instances', 'GPUs', 'cost'],
  plan.pools.map(
    (p) =>
      html`<tr><td><code>${p.offeringId}</code></td><td>${p.vendor}</td><td>${p.region}</td><td>${p.instanceType}</td><td>${p.capacityType}</td><td class="num">${p.count}</td><td class="num">${p.count * p.gpusPerInstance} × ${p.gpu}</td><td class="num">${usdPerHour(p.usdPerHour)}</td></tr>`,
  ),
  'The plan holds nothing.',
)}
<h2>Actions</h2>
${table(
  ['offering', 'launch', 'terminate'],
  plan.actions
    .filter((a) => a.provision > 0 || a.terminate > 0)
    .map(
      (a) =>
        html`<tr><td><code>${a.offeringId}</code></td><td class="num">${a.provision}</td><td class="num">${a.terminate}</td></tr>`,
    ),
  'No launches or terminations: the fleet already matched.',
)}
<h2>Demand it was made for</h2>
${table(
  ['GPU', 'region group', 'gang', 'GPUs now', 'peak ahead'],
  plan.inputs.demand.map(
    (d) =>
      html`<tr><td>${d.gpu}</td><td>${d.regionGroup}</td><td class="num">${d.gangSize}</td><td class="num">${firstPeriod(d.gpus)}</td><td class="num">${Math.max(0, ...d.gpus)}</td></tr>`,
  ),
  'No demand: the plan holds only the warm buffer.',
)}
<p class="note">${plan.inputs.offerings} offerings considered; fleet of ${plan.inputs.fleet.reduce((s, f) => s + f.count, 0)} instances; ${
    plan.inputs.unavailable.length
  } offerings unavailable${plan.inputs.unavailable.length > 0 ? html` (${plan.inputs.unavailable.join(', ')})` : ''}.</p>
${
  plan.unmet.length > 0
    ? html`<h2>Unmet</h2>${table(
        ['GPU', 'region group', 'gang', 'GPUs short'],
        plan.unmet.map(
          (u) =>
            html`<tr><td>${u.gpu}</td><td>${u.regionGroup}</td><td class="num">${u.gangSize}</td><td class="num">${firstPeriod(u.gpus)}</td></tr>`,
        ),
        '',
      )}`
    : ''
}
${plan.stockOuts.length > 0 ? html`<p class="notice">Stock-outs: ${plan.stockOuts.join(', ')}</p>` : ''}
<h2>Recent plans</h2>
${costChart}
${table(
  ['plan', 'made', 'status', 'cost', 'unmet GPUs', 'launched', 'terminated', 'solve'],
  plans.map(
    (p) =>
      html`<tr${p.id === plan.id ? html` class="selected"` : ''}><td><a href="/plans?id=${encodeURIComponent(p.id)}"><code>${p.id}</code></a></td><td>${time(p.createdAtMs)}</td><td>${p.status}</td><td class="num">${usdPerHour(p.usdPerHour)}</td><td class="num">${p.unmetGpus}</td><td class="num">${p.provision}</td><td class="num">${p.terminate}</td><td class="num">${p.solveMs} ms</td></tr>`,
  ),
  '',
)}`;
}
