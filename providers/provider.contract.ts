/**
 * The Provider contract as a test suite, run against every implementation (sim and local now, each cloud adapter
 * later): offerings, idempotent provision and terminate, inventory by tags, typed errors, events.
 *
 * An implementation's test file calls `describeProviderContract(name, makeHarness)`; the harness says which
 * offering to use and how to let the provider's time pass (advance a virtual clock, or poll a real cloud).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { VirtualClock } from '../lib/clock.ts';
import type { Instance, Provider, ProviderEvent } from './provider.ts';
import { InsufficientCapacityError, InvalidRequestError, QuotaExceededError } from './provider-errors.ts';

export interface ContractHarness {
  readonly provider: Provider;
  /** An offering the suite provisions; it must be available when the harness is made. */
  readonly offeringId: string;
  /** Instances of that offering one call can get (the suite asks for one more to provoke a capacity error). */
  readonly capacity: number;
  /** Lets the provider's time pass until `predicate` holds; throws after `maxMs` of the provider's time. */
  waitFor(predicate: () => Promise<boolean>, maxMs: number): Promise<void>;
  /** Lets `ms` of the provider's time pass. */
  elapse(ms: number): Promise<void>;
  /** A call that must fail with QuotaExceededError, when the harness can provoke one. */
  readonly exceedQuota?: () => Promise<unknown>;
  /** Longest provisioning plus termination time to wait for (default 15 minutes). */
  readonly settleMs?: number;
  dispose(): Promise<void>;
}

/** `waitFor` and `elapse` for a provider on a virtual clock: time jumps from timer to timer. */
export function virtualTime(clock: VirtualClock): Pick<ContractHarness, 'waitFor' | 'elapse'> {
  return {
    async waitFor(predicate, maxMs) {
      const deadline = clock.now() + maxMs;
      for (;;) {
        if (await predicate()) return;
        const next = clock.nextTimerAt();
        if (next === undefined || next > deadline)
          throw new Error(`condition not met within ${maxMs} ms of provider time`);
        await clock.advanceTo(next);
      }
    },
    elapse: (ms) => clock.advanceBy(ms),
  };
}

/** Lets the event readers catch up with what was published (test code may use the event loop directly). */
const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

export function describeProviderContract(name: string, makeHarness: () => Promise<ContractHarness>): void {
  describe(`Provider contract: ${name}`, () => {
    let h: ContractHarness;
    let events: ProviderEvent[];
    let stopEvents: AbortController;
    let reader: Promise<void>;
    let run = 0;
    const key = (label: string) => `contract-${run}-${label}`;
    const tags = (extra: Record<string, string> = {}) => ({ 'gpubroker-contract': `run-${run}`, ...extra });
    const ours = () => h.provider.list({ tags: tags() });
    const settle = () => h.settleMs ?? 15 * 60_000;
    const stateOf = async (id: string, includeTerminated = true) =>
      (await h.provider.list({ includeTerminated })).find((i) => i.id === id)?.state;

    beforeEach(async () => {
      run++;
      h = await makeHarness();
      events = [];
      stopEvents = new AbortController();
      const stream = h.provider.events({ signal: stopEvents.signal });
      reader = (async () => {
        for await (const event of stream) events.push(event);
      })();
    });

    afterEach(async () => {
      const left = await h.provider.list({ tags: tags() });
      if (left.length > 0) await h.provider.terminate(left.map((i) => i.id));
      stopEvents.abort();
      await reader;
      await h.dispose();
    });

    it('offers priced offerings with consistent availability', async () => {
      const offerings = await h.provider.offerings();
      expect(offerings.length).toBeGreaterThan(0);
      expect(new Set(offerings.map((o) => o.id)).size).toBe(offerings.length);
      for (const o of offerings) {
        expect(o.vendor).toBe(h.provider.vendor);
        expect(Number.isSafeInteger(o.microsPerHour) && o.microsPerHour >= 0).toBe(true);
        expect(o.gpusPerInstance).toBeGreaterThan(0);
        expect(o.available).toBe(o.availableZones.length > 0);
      }
      expect(offerings.find((o) => o.id === h.offeringId)?.available).toBe(true);
    });

    it('provisions pending instances that become running, and says so in events', async () => {
      const count = Math.min(2, h.capacity);
      const instances = await h.provider.provision({
        offeringId: h.offeringId,
        count,
        idempotencyKey: key('boot'),
        tags: tags({ role: 'boot' }),
      });
      expect(instances).toHaveLength(count);
      expect(new Set(instances.map((i) => i.id)).size).toBe(count);
      expect(new Set(instances.map((i) => i.zone)).size).toBe(1);
      for (const i of instances) {
        expect(i.state).toBe('pending');
        expect(i.offeringId).toBe(h.offeringId);
        expect(i.vendor).toBe(h.provider.vendor);
        expect(i.tags.role).toBe('boot');
        expect(i.idempotencyKey).toBe(key('boot'));
      }
      await h.waitFor(
        async () => (await ours()).every((i) => i.state === 'running') && (await ours()).length === count,
        settle(),
      );
      for (const i of await ours()) expect(i.runningAtMs).toBeGreaterThanOrEqual(i.launchedAtMs);
      await drain();
      for (const instance of instances) {
        const mine = events.filter((e) => e.kind === 'state-changed' && e.instanceId === instance.id);
        expect(mine.map((e) => (e.kind === 'state-changed' ? [e.from, e.to] : []))).toEqual([
          [null, 'pending'],
          ['pending', 'running'],
        ]);
      }
    });

    it('never provisions twice for one idempotency key', async () => {
      const request = { offeringId: h.offeringId, count: 1, idempotencyKey: key('once'), tags: tags() };
      const first = await h.provider.provision(request);
      const again = await h.provider.provision({ ...request, tags: { ...request.tags } });
      expect(again.map((i) => i.id)).toEqual(first.map((i) => i.id));
      expect((await ours()).map((i) => i.id)).toEqual(first.map((i) => i.id));
      await expect(h.provider.provision({ ...request, tags: tags({ other: 'x' }) })).rejects.toBeInstanceOf(
        InvalidRequestError,
      );
      expect(await ours()).toHaveLength(1);
    });

    it('rejects invalid requests with InvalidRequestError and changes nothing', async () => {
      const valid = { offeringId: h.offeringId, count: 1, idempotencyKey: key('bad'), tags: tags() };
      const cases = [
        { ...valid, offeringId: `${h.provider.vendor}/nowhere/none/on-demand` },
        { ...valid, count: 0 },
        { ...valid, count: -1 },
        { ...valid, count: 1.5 },
        { ...valid, idempotencyKey: '' },
        { ...valid, zone: 'no-such-zone-9z' },
      ];
      for (const request of cases) {
        const error = await h.provider.provision(request).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidRequestError);
        expect((error as InvalidRequestError).field.length).toBeGreaterThan(0);
      }
      expect(await ours()).toEqual([]);
    });

    it('fails with InsufficientCapacityError beyond what the offering has, provisioning nothing', async () => {
      const error = await h.provider
        .provision({
          offeringId: h.offeringId,
          count: h.capacity + 1,
          idempotencyKey: key('too-many'),
          tags: tags(),
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InsufficientCapacityError);
      expect((error as InsufficientCapacityError).offeringId).toBe(h.offeringId);
      expect((error as InsufficientCapacityError).retryAfterMs).toBeGreaterThan(0);
      expect(await ours()).toEqual([]);
    });

    it('fails with QuotaExceededError above the account quota', async (context) => {
      if (!h.exceedQuota) return context.skip();
      await expect(h.exceedQuota()).rejects.toBeInstanceOf(QuotaExceededError);
    });

    it('terminates idempotently; unknown and terminated ids are not errors', async () => {
      const [instance] = await h.provider.provision({
        offeringId: h.offeringId,
        count: 1,
        idempotencyKey: key('end'),
        tags: tags(),
      });
      const id = (instance as Instance).id;
      await h.waitFor(async () => (await stateOf(id)) === 'running', settle());
      await h.provider.terminate([id]);
      await h.provider.terminate([id, 'i-does-not-exist-0000']);
      await h.waitFor(async () => (await stateOf(id)) === 'terminated', settle());
      await h.provider.terminate([id]);
      expect(await ours()).toEqual([]);
      const gone = (await h.provider.list({ tags: tags(), includeTerminated: true })).find(
        (i) => i.id === id,
      );
      expect(gone?.state).toBe('terminated');
      expect(gone?.terminationReason).toBe('requested');
      await drain();
      const transitions = events
        .filter((e) => e.kind === 'state-changed' && e.instanceId === id)
        .map((e) => (e.kind === 'state-changed' ? e.to : ''));
      expect(transitions).toEqual(['pending', 'running', 'terminating', 'terminated']);
      const times = events
        .filter((e) => e.kind === 'state-changed' && e.instanceId === id)
        .map((e) => e.atMs);
      expect([...times].sort((a, b) => a - b)).toEqual(times);
    });

    it('terminates a pending instance before it boots', async () => {
      const [instance] = await h.provider.provision({
        offeringId: h.offeringId,
        count: 1,
        idempotencyKey: key('early'),
        tags: tags(),
      });
      const id = (instance as Instance).id;
      await h.provider.terminate([id]);
      await h.waitFor(async () => (await stateOf(id)) === 'terminated', settle());
      await h.elapse(settle());
      expect(await stateOf(id)).toBe('terminated');
    });

    it('lists the inventory by tags', async () => {
      const a = await h.provider.provision({
        offeringId: h.offeringId,
        count: 1,
        idempotencyKey: key('tag-a'),
        tags: tags({ group: 'a' }),
      });
      const capacityLeft = h.capacity > 1;
      const b = capacityLeft
        ? await h.provider.provision({
            offeringId: h.offeringId,
            count: 1,
            idempotencyKey: key('tag-b'),
            tags: tags({ group: 'b' }),
          })
        : [];
      const groupA = await h.provider.list({ tags: tags({ group: 'a' }) });
      expect(groupA.map((i) => i.id)).toEqual(a.map((i) => i.id));
      const all = (await ours()).map((i) => i.id).sort();
      expect(all).toEqual([...a, ...b].map((i) => i.id).sort());
      expect(await h.provider.list({ tags: tags({ group: 'none' }) })).toEqual([]);
    });

    it('gives every subscriber the same events, and ends a subscription on abort', async () => {
      const second: ProviderEvent[] = [];
      const controller = new AbortController();
      const secondReader = (async () => {
        for await (const event of h.provider.events({ signal: controller.signal })) second.push(event);
      })();
      const before = events.length;
      await h.provider.provision({
        offeringId: h.offeringId,
        count: 1,
        idempotencyKey: key('ev'),
        tags: tags(),
      });
      await h.waitFor(async () => (await ours()).every((i) => i.state === 'running'), settle());
      await drain();
      controller.abort();
      await secondReader;
      expect(second.length).toBeGreaterThanOrEqual(2);
      expect(second).toEqual(events.slice(before, before + second.length));
    });
  });
}
