/** `/metrics` in the Prometheus text format: pool sizes, buffer, plan cost, solve time, lease waits. */
import type { BrokerCore } from './broker.ts';

export function renderMetrics(broker: BrokerCore): string {
  const lines: string[] = [];
  const metric = (name: string, help: string, type: 'gauge' | 'counter', samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  const pools = new Map<string, number>();
  for (const i of broker.fleet.all()) {
    const key = `{offering="${i.offeringId}",state="${i.state}"}`;
    pools.set(key, (pools.get(key) ?? 0) + 1);
  }
  metric('gpubroker_instances', 'Instances held, by offering and state', 'gauge', [...pools]);
  const free = broker.fleet.freeGpus();
  const byGpu = new Map<string, number>();
  for (const f of free) byGpu.set(`{gpu="${f.gpu}"}`, (byGpu.get(`{gpu="${f.gpu}"}`) ?? 0) + f.free.length);
  metric('gpubroker_free_gpus', 'GPUs of running instances not leased (the warm buffer)', 'gauge', [
    ...byGpu,
  ]);
  const { pending, ready } = broker.leases.counts();
  metric('gpubroker_leases', 'Open leases by status', 'gauge', [
    ['{status="pending"}', pending],
    ['{status="ready"}', ready],
  ]);
  const last = broker.loop.last;
  if (last) {
    metric('gpubroker_plan_usd_per_hour', 'Spend per hour of the latest plan', 'gauge', [
      ['', last.usdPerHour],
    ]);
    metric('gpubroker_plan_solve_ms', 'Solve time of the latest plan', 'gauge', [['', last.solveMs]]);
    metric('gpubroker_tick_ms', 'Duration of the latest tick', 'gauge', [['', last.tickMs]]);
    metric('gpubroker_plan_unmet_gpus', 'GPUs of demand the latest plan could not cover', 'gauge', [
      ['', last.unmetGpus],
    ]);
  }
  const waits = broker.leaseWaits;
  metric('gpubroker_lease_wait_ms_sum', 'Total ms leases waited until ready', 'counter', [['', waits.sumMs]]);
  metric('gpubroker_lease_wait_ms_count', 'Leases that became ready', 'counter', [['', waits.count]]);
  return `${lines.join('\n')}\n`;
}
