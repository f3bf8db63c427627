/**
 * What the console's pages show changed: a fingerprint per topic, computed once a second while any console is
 * open (and not at all otherwise), pushed to the pages as server-sent events naming the topic; each page then
 * fetches its main area again. Fingerprints rather than hooks in every module: the fleet, leases, runtime and loop
 * stay unaware of the console, and a page is at most a second behind. Policy and audit changes need a database
 * read, so they are looked at every fifth second.
 */
import type { TimerHandle } from '../../lib/clock.ts';
import type { BrokerCore } from '../broker.ts';
import type { Topic } from './layout.ts';

const PERIOD_MS = 1_000;
const POLICY_EVERY = 5;

export class ConsoleFeed {
  private readonly listeners = new Set<(topic: Topic) => void>();
  private readonly closeListeners = new Set<() => void>();
  private readonly last = new Map<Topic, string>();
  private timer: TimerHandle | undefined;
  private checks = 0;
  /** Bumped at every start: a check of an earlier run (stopped while it awaited) ends there. */
  private run = 0;
  private closed = false;

  constructor(private readonly broker: BrokerCore) {}

  /**
   * Calls `listener` with each topic that changes, and `onClose` when the feed closes (the broker stops); returns
   * the unsubscribe.
   */
  subscribe(listener: (topic: Topic) => void, onClose: () => void): () => void {
    if (this.closed) {
      onClose();
      return () => undefined;
    }
    this.listeners.add(listener);
    this.closeListeners.add(onClose);
    if (this.listeners.size === 1 && !this.closed) {
      this.last.clear();
      this.checks = 0;
      void this.check(++this.run, false);
    }
    return () => {
      this.listeners.delete(listener);
      this.closeListeners.delete(onClose);
      if (this.listeners.size === 0) this.stop();
    };
  }

  close(): void {
    this.closed = true;
    this.stop();
    this.listeners.clear();
    for (const onClose of [...this.closeListeners]) onClose();
    this.closeListeners.clear();
  }

  private stop(): void {
    this.run++;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Takes the fingerprints; the first round after a start only records them. */
  private async check(run: number, announce = true): Promise<void> {
    this.timer = undefined;
    try {
      const withPolicy = this.checks++ % POLICY_EVERY === 0;
      const prints = this.fingerprints();
      if (withPolicy) prints.push(['policy', await this.policyPrint().catch(() => '')]);
      if (this.closed || this.listeners.size === 0 || run !== this.run) return;
      for (const [topic, print] of prints) {
        const before = this.last.get(topic);
        this.last.set(topic, print);
        if (announce && before !== undefined && before !== print)
          for (const listener of [...this.listeners])
            try {
              listener(topic);
            } catch (error) {
              this.broker.logger.warn({ err: error }, 'console feed: a listener failed');
            }
      }
    } catch (error) {
      this.broker.logger.warn({ err: error }, 'console feed: a check failed');
    }
    // The next check, unless this run was stopped meanwhile.
    if (this.closed || this.listeners.size === 0 || run !== this.run || this.timer) return;
    const { clock } = this.broker;
    this.timer = clock.setTimer(clock.now() + PERIOD_MS, () => void this.check(run));
  }

  private fingerprints(): [Topic, string][] {
    const { fleet, leases, loop, runtime, recentFailures } = this.broker;
    const instances = fleet
      .all()
      .map((i) => `${i.id}:${i.state}:${i.draining ? 1 : 0}:${i.allocated.size}`)
      .join(',');
    const buffers = [...loop.bufferTargets].map(([gpu, n]) => `${gpu}=${n}`).join(',');
    const containers = runtime
      .containers()
      .map((k) => `${k.containerId}:${k.state}:${k.inFlight}`)
      .join(',');
    const calls = runtime
      .callsInFlight()
      .map((c) => `${c.tenantId}/${c.app}/${c.functionName}/${c.status}=${c.count}`)
      .join(',');
    const tick = String(loop.last?.atMs ?? '');
    return [
      ['fleet', `${instances}|${buffers}`],
      ['leases', String(leases.changes)],
      ['functions', `${containers}|${calls}|${recentFailures.total}`],
      ['plans', tick],
      ['money', tick],
    ];
  }

  private async policyPrint(): Promise<string> {
    const [policy, prices, audit] = await Promise.all([
      this.broker.policies.current(),
      this.broker.priceBooks.current(),
      this.broker.audit.latest(1),
    ]);
    return `${policy.version}|${prices.version}|${audit[0]?.id ?? ''}`;
  }
}
