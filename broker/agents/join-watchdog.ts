/**
 * The join watchdog: a cloud instance starts its agent from its start-up script (`providers/agent-bootstrap.ts`);
 * if that fails (no network at boot, a bad image), the instance runs, costs money and never takes work, and the
 * cloud will not run the script again. So an instance of a cloud that bootstraps agents, running for
 * `timeoutMs` without its agent ever having joined, is given up on: it ends as failed (its leases move, the loop
 * is triggered to replace it) and is terminated. An instance whose agent joined once and was lost later is not
 * the watchdog's (the hub's heartbeats handle it).
 *
 * It checks on the Clock, every `checkEveryMs`, and only while this replica leads the loop.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import type { Fleet, LiveInstance } from '../fleet.ts';

/** How long a cloud instance may run before its agent joins (default of `agentJoinTimeoutMs`). */
export const DEFAULT_AGENT_JOIN_TIMEOUT_MS = 10 * 60_000;

export interface JoinWatchdogOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly fleet: Fleet;
  /** Vendors whose instances start their own agent (the real clouds); others are never given up on. */
  readonly vendors: ReadonlySet<string>;
  readonly timeoutMs: number;
  /** How often to look (default: a tenth of the timeout, from 1 s to 1 min). */
  readonly checkEveryMs?: number;
  /** Whether an agent of the instance is connected, or dropped and may still come back. */
  readonly present: (instanceId: string) => boolean;
  /** Which of these instances an agent ever joined. */
  readonly joined: (instanceIds: readonly string[]) => Promise<ReadonlySet<string>>;
  /** Whether this replica leads (only the leader changes the fleet). */
  readonly leader: () => boolean;
  /** Ends the instances as failed and terminates them (`why` in words). */
  readonly giveUp: (instances: readonly LiveInstance[], why: string) => Promise<void>;
}

export class JoinWatchdog {
  private timer: TimerHandle | undefined;
  private stopped = true;
  private checking: Promise<void> | undefined;
  /** Instances known to have joined once: never asked about again. */
  private readonly joinedOnce = new Set<string>();
  private readonly everyMs: number;

  constructor(private readonly o: JoinWatchdogOptions) {
    this.everyMs = o.checkEveryMs ?? Math.min(60_000, Math.max(1_000, Math.floor(o.timeoutMs / 10)));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.arm();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.checking;
  }

  /** Gives up on the instances that are overdue now; resolves to them. */
  async check(): Promise<readonly LiveInstance[]> {
    if (!this.o.leader()) return [];
    const now = this.o.clock.now();
    const live = new Set<string>();
    const candidates: LiveInstance[] = [];
    for (const instance of this.o.fleet.all()) {
      live.add(instance.id);
      if (
        this.o.vendors.has(instance.vendor) &&
        instance.state === 'running' &&
        instance.runningAt !== null &&
        now - instance.runningAt >= this.o.timeoutMs &&
        !this.joinedOnce.has(instance.id)
      ) {
        if (this.o.present(instance.id)) this.joinedOnce.add(instance.id);
        else candidates.push(instance);
      }
    }
    for (const id of this.joinedOnce) if (!live.has(id)) this.joinedOnce.delete(id);
    if (candidates.length === 0) return [];
    const joined = await this.o.joined(candidates.map((i) => i.id));
    for (const id of joined) this.joinedOnce.add(id);
    // Still live and running after the query: a terminate or a provider event may have come meanwhile.
    const overdue = candidates.filter(
      (i) => !joined.has(i.id) && this.o.fleet.get(i.id)?.state === 'running',
    );
    if (overdue.length === 0) return [];
    const why = `its agent did not join within ${this.o.timeoutMs / 1000} s of running`;
    this.o.logger.warn({ instances: overdue.map((i) => i.id), why }, 'giving up on instances');
    await this.o.giveUp(overdue, why);
    return overdue;
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = this.o.clock.setTimer(this.o.clock.now() + this.everyMs, () => {
      this.checking = this.check()
        .then(
          () => undefined,
          (error: unknown) => this.o.logger.error({ err: error }, 'join watchdog check failed'),
        )
        .finally(() => {
          this.checking = undefined;
          this.arm();
        });
    });
  }
}
