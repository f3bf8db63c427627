/**
 * Fleet (operator): instances by vendor, region, offering and capacity type; the warm buffer, target against ready;
 * the agents that joined, with their GPUs and health (a failed check takes a machine out of placement).
 */
import { html } from 'hono/html';
import type { ConsoleApi } from '../api.ts';
import { chart, groupedBars } from '../charts.ts';
import { duration, time, usdPerHour } from '../format.ts';
import { badge, cards, type Html, table } from '../layout.ts';

export async function fleetPage(api: ConsoleApi, nowMs: number): Promise<Html> {
  const [fleet, { agents }] = await Promise.all([api.get('/v1/fleet'), api.get('/v1/agents')]);
  const joined = agents.filter((a) => a.revokedAt === null);
  const live = fleet.instances.filter((i) => i.state !== 'terminated');
  const running = live.filter((i) => i.state === 'running');
  const gpus = live.reduce((sum, i) => sum + i.gpus, 0);
  const allocated = live.reduce((sum, i) => sum + i.allocatedGpus, 0);

  const groups = new Map<
    string,
    {
      key: (typeof live)[number];
      running: number;
      pending: number;
      gpus: number;
      allocated: number;
      usd: number;
    }
  >();
  for (const i of live) {
    const key = `${i.vendor}|${i.region}|${i.instanceType}|${i.capacityType}`;
    const group = groups.get(key) ?? { key: i, running: 0, pending: 0, gpus: 0, allocated: 0, usd: 0 };
    if (i.state === 'running') group.running++;
    else if (i.state === 'pending') group.pending++;
    group.gpus += i.gpus;
    group.allocated += i.allocatedGpus;
    group.usd += i.usdPerHour;
    groups.set(key, group);
  }
  const offerings = [...groups.values()].sort((a, b) => b.usd - a.usd);

  const bufferChart =
    fleet.buffers.length === 0
      ? ''
      : await chart(
          groupedBars({
            title: 'Warm buffer per GPU type',
            rows: fleet.buffers.flatMap((b) => [
              { gpu: b.gpu, what: 'target', gpus: b.targetGpus },
              { gpu: b.gpu, what: 'ready', gpus: b.readyGpus },
            ]),
            category: 'gpu',
            series: 'what',
            value: 'gpus',
            valueTitle: 'GPUs',
          }),
          'Warm buffer per GPU type, target against ready',
        );

  return html`<h1>Fleet</h1>
${cards([
  ['instances running', String(running.length)],
  ['booting', String(live.length - running.length)],
  ['GPUs held', String(gpus)],
  ['GPUs in use', String(allocated)],
  ['cost', usdPerHour(fleet.usdPerHour)],
])}
<h2>Warm buffer</h2>
${table(
  ['GPU', 'target', 'ready', ''],
  fleet.buffers.map(
    (b) =>
      html`<tr><td>${b.gpu}</td><td class="num">${b.targetGpus}</td><td class="num">${b.readyGpus}</td><td>${
        b.readyGpus >= b.targetGpus
          ? badge('met', 'ok')
          : badge(`short ${b.targetGpus - b.readyGpus}`, 'warn')
      }</td></tr>`,
  ),
  'No buffer is planned yet: the loop has not ticked, or the policy holds none.',
)}
${bufferChart}
<h2>Offerings held</h2>
${table(
  ['vendor', 'region', 'instance type', 'capacity', 'running', 'booting', 'GPUs', 'in use', 'cost'],
  offerings.map(
    (g) =>
      html`<tr><td>${g.key.vendor}</td><td>${g.key.region}</td><td>${g.key.instanceType}</td><td>${g.key.capacityType}</td><td class="num">${g.running}</td><td class="num">${g.pending}</td><td class="num">${g.gpus} × ${g.key.gpu}</td><td class="num">${g.allocated}</td><td class="num">${usdPerHour(g.usd)}</td></tr>`,
  ),
  'The fleet is empty.',
)}
<h2>Agents</h2>
${table(
  ['agent', 'instance', 'host', 'GPUs', 'health', 'placement', 'last seen'],
  joined.map((a) => {
    const link = a.connection;
    const health = !link
      ? badge('disconnected', 'bad')
      : link.health.ok
        ? badge(`ok${link.health.driverVersion ? ` · driver ${link.health.driverVersion}` : ''}`, 'ok')
        : badge(link.health.problems.join('; ') || 'unhealthy', 'bad');
    const gpus = link
      ? [...new Set(link.gpus.map((g) => g.name))]
          .map((name) => `${link.gpus.filter((g) => g.name === name).length} × ${name}`)
          .join(', ')
      : '–';
    return html`<tr data-agent="${a.agentId}"><td><code>${a.agentId}</code></td><td><code>${a.instanceId}</code></td><td>${a.hostname}</td><td>${gpus}</td><td>${health}</td><td>${
      link?.placeable ? badge('takes containers', 'ok') : badge('out of placement', 'warn')
    }</td><td>${link ? time(Date.parse(link.lastSeenAt)) : '–'}</td></tr>`;
  }),
  'No agent has joined: simulated instances are served by the local agent host once they boot; a machine joins with gpubroker agent.',
)}
<h2>Instances</h2>
${table(
  ['instance', 'vendor', 'zone', 'type', 'capacity', 'GPUs', 'in use', 'state', 'cost', 'age'],
  live.map(
    (i) =>
      html`<tr data-instance="${i.id}"><td><code>${i.id}</code></td><td>${i.vendor}</td><td>${i.zone}</td><td>${i.instanceType}</td><td>${i.capacityType}</td><td class="num">${i.gpus} × ${i.gpu}</td><td class="num">${i.allocatedGpus}</td><td>${stateBadge(i.state, i.draining)}</td><td class="num">${usdPerHour(i.usdPerHour)}</td><td>${duration(nowMs - i.launchedAtMs)}</td></tr>`,
  ),
  'No instances.',
)}`;
}

function stateBadge(state: string, draining: boolean): Html {
  if (draining) return badge('draining', 'warn');
  if (state === 'running') return badge('running', 'ok');
  if (state === 'pending') return badge('booting', 'idle');
  return badge(state, 'bad');
}
