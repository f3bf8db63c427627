/** Leases: status, wait, allocations and tenant; newest first. */
import { html } from 'hono/html';
import type { Principal } from '../../tokens.ts';
import type { ConsoleApi } from '../api.ts';
import { duration, time, usdPerHour } from '../format.ts';
import { badge, cards, type Html, table } from '../layout.ts';

const SHOWN = 200;

export async function leasesPage(api: ConsoleApi, principal: Principal, nowMs: number): Promise<Html> {
  const { leases } = await api.get('/v1/leases');
  const newest = [...leases].reverse().slice(0, SHOWN);
  const pending = leases.filter((l) => l.status === 'pending');
  const ready = leases.filter((l) => l.status === 'ready');
  const waits = leases
    .filter((l) => l.readyAtMs !== null)
    .map((l) => (l.readyAtMs as number) - l.createdAtMs)
    .sort((a, b) => a - b);
  const median = waits.length > 0 ? duration(waits[Math.floor((waits.length - 1) / 2)] as number) : '–';
  const operator = principal.role === 'operator';

  return html`<h1>Leases</h1>
${cards([
  ['pending', String(pending.length)],
  ['ready', String(ready.length)],
  ['GPUs leased', String(ready.reduce((sum, l) => sum + l.count, 0))],
  ['median wait', median],
])}
${table(
  [
    'lease',
    ...(operator ? ['tenant'] : []),
    'GPUs',
    'status',
    'wait',
    'allocations',
    'cost',
    'requested',
    'reason',
  ],
  newest.map((l) => {
    const waited =
      l.readyAtMs !== null
        ? duration(l.readyAtMs - l.createdAtMs)
        : l.status === 'pending'
          ? `${duration(nowMs - l.createdAtMs)} so far`
          : '–';
    return html`<tr data-lease="${l.id}" data-status="${l.status}"><td><code>${l.id}</code></td>${
      operator ? html`<td>${l.tenant ?? ''}</td>` : ''
    }<td class="num">${l.count} × ${l.gpu}</td><td>${statusBadge(l.status)}</td><td>${waited}</td><td>${l.allocations.map(
      (a) => html`<div><code>${a.instanceId}</code> [${a.gpuIndices.join(', ')}]</div>`,
    )}</td><td class="num">${l.usdPerHour === null ? '–' : usdPerHour(l.usdPerHour)}</td><td>${time(l.createdAtMs)}</td><td>${l.reason ?? ''}</td></tr>`;
  }),
  'No leases yet: `gpubroker lease create --gpu H100 --count 1` or `broker.gpus.request(…)` in the SDK.',
)}
${leases.length > SHOWN ? html`<p class="empty">The newest ${SHOWN} of ${leases.length} leases.</p>` : ''}`;
}

function statusBadge(status: string): Html {
  if (status === 'ready') return badge('ready', 'ok');
  if (status === 'pending') return badge('pending', 'warn');
  if (status === 'failed') return badge('failed', 'bad');
  return badge(status, 'idle');
}
