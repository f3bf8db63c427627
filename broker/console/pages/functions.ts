/**
 * Functions: the principal's apps, calls queued and running per function, containers per machine, the last
 * failures with their reason; live logs stream beside it (functionsLogPane, fed by the event stream).
 */
import { html } from 'hono/html';
import { groupBy } from '../../../lib/arrays.ts';
import type { Principal } from '../../tokens.ts';
import type { ConsoleApi } from '../api.ts';
import { duration, time } from '../format.ts';
import { badge, cards, type Html, table } from '../layout.ts';

export async function functionsPage(api: ConsoleApi, principal: Principal, nowMs: number): Promise<Html> {
  const [{ apps }, state] = await Promise.all([api.get('/v1/apps'), api.get('/v1/containers')]);
  const operator = principal.role === 'operator';
  const machines = groupBy(state.containers, (k) => k.instanceId);
  const queued = state.calls.reduce((sum, c) => sum + c.queued, 0);
  const running = state.calls.reduce((sum, c) => sum + c.running, 0);

  return html`<h1>Functions</h1>
${cards([
  ['containers', String(state.containers.length)],
  ['ready', String(state.containers.filter((k) => k.state === 'ready').length)],
  ['calls running', String(running)],
  ['calls queued', String(queued)],
  ['recent failures', String(state.failures.length)],
])}
<h2>${operator ? 'Your apps' : 'Apps'}</h2>
${table(
  ['app', 'version', 'functions', 'containers ready', 'calls done'],
  apps.map(
    (a) =>
      html`<tr><td>${a.name}${a.ephemeral ? html` ${badge('run', 'idle')}` : ''}</td><td class="num">${a.version}</td><td>${a.functions.join(', ')}</td><td class="num">${a.containers.ready} / ${a.containers.total}</td><td class="num">${a.calls.done} / ${a.calls.total}</td></tr>`,
  ),
  'No apps deployed: `gpubroker deploy app.ts` or `gpubroker run app.ts`.',
)}
<h2>Calls in flight</h2>
${table(
  [...(operator ? ['tenant'] : []), 'app', 'function', 'running', 'queued'],
  state.calls.map(
    (c) =>
      html`<tr>${operator ? html`<td>${c.tenant}</td>` : ''}<td>${c.app}</td><td>${c.function}</td><td class="num">${c.running}</td><td class="num">${c.queued}</td></tr>`,
  ),
  'No calls in flight.',
)}
<h2>Containers per machine</h2>
${
  machines.size === 0
    ? html`<p class="empty">No containers: functions scale to zero when idle.</p>`
    : [...machines].map(
        ([
          instanceId,
          list,
        ]) => html`<h3><code>${instanceId}</code> <small>${list[0]?.vendor} · ${list[0]?.region} · ${list[0]?.gpu} · ${list[0]?.capacityType}</small></h3>
${table(
  [
    'container',
    ...(operator ? ['tenant'] : []),
    'function',
    'state',
    'GPUs',
    'in flight',
    'cold start',
    'age',
  ],
  list.map(
    (k) =>
      html`<tr data-container="${k.id}"><td><code>${k.id}</code></td>${operator ? html`<td>${k.tenant}</td>` : ''}<td>${k.app}.${k.function}</td><td>${containerBadge(k.state)}${k.reason ? html` <small>${k.reason}</small>` : ''}</td><td>[${k.gpuIndices.join(', ')}]</td><td class="num">${k.inFlight}</td><td>${k.coldStartMs === undefined ? '–' : duration(k.coldStartMs)}</td><td>${duration(nowMs - k.placedAtMs)}</td></tr>`,
  ),
  '',
)}`,
      )
}
<h2>Recent failures</h2>
${table(
  ['when', ...(operator ? ['tenant'] : []), 'function', 'call', 'attempts', 'reason'],
  state.failures.map(
    (f) =>
      html`<tr><td>${time(f.atMs)}</td>${operator ? html`<td>${f.tenant}</td>` : ''}<td>${f.app}.${f.function}</td><td><code>${f.callId}</code></td><td class="num">${f.attempts}</td><td class="reason">${f.error}</td></tr>`,
  ),
  'No failed calls since the broker started.',
)}`;
}

/** The live log pane: lines arrive as `log` events and are appended (see feed.ts). */
export function functionsLogPane(): Html {
  return html`<h2>Live logs</h2>
<div id="logs" class="logs" sse-swap="log" hx-swap="beforeend" data-testid="logs"></div>`;
}

function containerBadge(state: string): Html {
  if (state === 'ready') return badge('ready', 'ok');
  if (state === 'starting' || state === 'placed') return badge(state, 'warn');
  if (state === 'failed') return badge(state, 'bad');
  return badge(state, 'idle');
}
