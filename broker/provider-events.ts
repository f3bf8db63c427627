/**
 * Everything the providers tell the broker goes through here: their events as they come (a boot finished, a spot
 * instance is being reclaimed, an instance ended) and, on winning the leadership, their inventories
 * (`reconcile`), applied as the events would have been. Each is turned into the fleet's state, the leases that
 * move or wait, the runtime's drained instances and a loop trigger when capacity was lost. Events are listened to
 * from the start but handled only once `open()` is called, after the broker caught up with the inventory.
 */
import type { Logger } from 'pino';
import type { Instance, Provider, ProviderEvent, TerminationReason } from '../providers/provider.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { ACTION_TAG, FLEET_TAG } from './act.ts';
import type { Database } from './db/open-database.ts';
import { actions } from './db/schema.ts';
import type { Fleet } from './fleet.ts';
import type { LeaseService } from './leases.ts';
import type { ControlLoop } from './loop.ts';

export interface ProviderEventsOptions {
  readonly db: Database;
  readonly providers: ReadonlyMap<string, Provider>;
  readonly fleet: Fleet;
  readonly leases: LeaseService;
  readonly runtime: Runtime;
  readonly loop: ControlLoop;
  /** The id our instances are tagged with (loaded on start). */
  readonly fleetId: () => string;
  readonly logger: Logger;
}

export class ProviderEvents {
  private readonly stop = new AbortController();
  private readonly readers: Promise<void>[] = [];
  private opened = false;
  /** Events handled so far (or dropped by a follower): a simulation's clock waits until it has heard them all. */
  handled = 0;
  private markOpened: () => void = () => undefined;
  private readonly openedSignal = new Promise<void>((resolve) => {
    this.markOpened = resolve;
  });

  constructor(private readonly o: ProviderEventsOptions) {}

  /**
   * Subscribes to every provider's events. Listening starts before the inventory is read, so an event of the
   * moments it is being read waits its turn instead of being lost.
   */
  listen(): void {
    for (const provider of this.o.providers.values()) this.readers.push(this.follow(provider));
  }

  /** Events held back since `listen` are handled from now on. */
  open(): void {
    this.opened = true;
    this.markOpened();
  }

  async close(): Promise<void> {
    this.stop.abort();
    await Promise.all(this.readers);
  }

  /**
   * Brings the fleet in line with the providers' inventories: what changed while nobody listened (a boot finished,
   * a spot instance was reclaimed or is being reclaimed, an instance ended) is applied as its event would have
   * been; instances the provider no longer lists at all are lost; fleet-tagged instances of no recorded action are
   * orphans and are terminated.
   */
  async reconcile(): Promise<void> {
    const { db } = this.o;
    const known = new Set((await db.select({ id: actions.id }).from(actions)).map((a) => a.id));
    for (const provider of this.o.providers.values()) {
      let listed: Awaited<ReturnType<Provider['list']>>;
      try {
        listed = await provider.list({ tags: { [FLEET_TAG]: this.o.fleetId() }, includeTerminated: true });
      } catch (error) {
        this.o.logger.warn(
          { vendor: provider.vendor, err: error },
          'cannot list the inventory; reconciling later',
        );
        continue;
      }
      const orphans: string[] = [];
      const ended: Instance[] = [];
      const reclaimed: Instance[] = [];
      const adopted: Instance[] = [];
      for (const instance of listed) {
        if (!known.has(instance.tags[ACTION_TAG] ?? '')) {
          if (instance.state !== 'terminated' && instance.state !== 'terminating') orphans.push(instance.id);
        } else if (instance.state === 'terminated') {
          if (this.o.fleet.get(instance.id)) ended.push(instance);
        } else {
          adopted.push(instance);
          if (instance.interruptAtMs !== undefined && this.o.fleet.get(instance.id)?.interruptAt == null)
            reclaimed.push(instance);
        }
      }
      await this.o.fleet.recordAll(adopted);
      if (orphans.length > 0) {
        this.o.logger.warn({ vendor: provider.vendor, orphans }, 'terminating orphans');
        await provider.terminate(orphans);
      }
      for (const instance of reclaimed)
        await this.o.leases.evacuate(
          instance.id,
          `instance ${instance.id} is being reclaimed by ${provider.vendor}`,
        );
      this.o.runtime.drainInstances(reclaimed.map((i) => i.id));
      for (const instance of ended) {
        const reason = instance.terminationReason ?? 'failed';
        this.o.runtime.drainInstances([instance.id]);
        await this.o.leases.evacuate(instance.id, `instance ${instance.id} ended (${reason})`);
        await this.o.fleet.setState(instance.id, 'terminated', { reason });
      }
      const present = new Set(listed.map((i) => i.id));
      for (const instance of this.o.fleet.all())
        if (instance.vendor === provider.vendor && !present.has(instance.id)) {
          await this.o.leases.evacuate(
            instance.id,
            `instance ${instance.id} is gone from ${provider.vendor}`,
          );
          await this.o.fleet.setState(instance.id, 'terminated', { reason: 'failed' });
        }
    }
    await this.o.leases.servePending();
  }

  private async follow(provider: Provider): Promise<void> {
    for await (const event of provider.events({ signal: this.stop.signal })) {
      if (!this.opened) await this.openedSignal;
      try {
        await this.onEvent(event);
      } catch (error) {
        this.o.logger.error({ err: error, event }, 'provider event not handled');
      } finally {
        this.handled++;
      }
    }
  }

  private async onEvent(event: ProviderEvent): Promise<void> {
    // Followers leave the fleet to the leader; when one takes over, it reconciles with the inventory instead.
    if (!this.o.loop.leader) return;
    if (event.kind === 'interruption-notice') {
      const instance = this.o.fleet.get(event.instanceId);
      if (!instance) return;
      await this.o.fleet.setState(event.instanceId, instance.state, {
        interruptAt: event.terminateAtMs,
      });
      await this.o.leases.evacuate(
        event.instanceId,
        `instance ${event.instanceId} is being reclaimed by ${event.vendor}`,
      );
      this.o.runtime.drainInstances([event.instanceId]);
      this.o.loop.trigger();
      return;
    }
    if (event.kind !== 'state-changed' || !this.o.fleet.get(event.instanceId)) return;
    if (event.to === 'running') {
      await this.o.fleet.setState(event.instanceId, 'running', { runningAt: event.atMs });
      await this.o.leases.servePending();
    } else if (event.to === 'terminating') {
      await this.o.fleet.setState(event.instanceId, 'terminating');
    } else if (event.to === 'terminated') {
      await this.ended(event.instanceId, event.reason ?? 'failed', event.reason ?? 'unknown');
    }
  }

  /**
   * An instance ended (`why`, in words): the runtime drains it, its leases move, the fleet records it terminated,
   * and unless we asked for it, the loop is triggered to replace it. Also for instances the broker gives up on
   * (`agents/join-watchdog.ts`), before it terminates them.
   */
  async ended(instanceId: string, reason: TerminationReason, why: string): Promise<void> {
    this.o.runtime.drainInstances([instanceId]);
    await this.o.leases.evacuate(instanceId, `instance ${instanceId} ended (${why})`);
    await this.o.fleet.setState(instanceId, 'terminated', { reason });
    if (reason !== 'requested') this.o.loop.trigger();
  }
}
