/**
 * The Fleet's free-GPU answer is computed once and handed out until the fleet changes. For any sequence of
 * launches, state changes, drains, reclaim warnings and holdings (on a real in-memory PGlite), it must equal what
 * the live instances say at that moment.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import type { Instance } from '../providers/provider.ts';
import { emptyDatabase } from '../test/empty-database.ts';
import type { OpenedDatabase } from './db/open-database.ts';
import { instances } from './db/schema.ts';
import { Fleet } from './fleet.ts';

let database: OpenedDatabase;
beforeAll(async () => {
  database = await emptyDatabase();
});
afterAll(async () => {
  await database.close();
});

function launched(n: number, gpus: number): Instance {
  return {
    id: `i-${n}`,
    vendor: 'aws',
    offeringId: `aws/us-east-1/g6.${gpus}x/on-demand`,
    region: 'us-east-1',
    zone: 'us-east-1a',
    instanceType: `g6.${gpus}x`,
    capacityType: 'on-demand',
    gpu: 'L4',
    gpusPerInstance: gpus,
    state: 'pending',
    microsPerHour: 800_000 * gpus,
    idempotencyKey: `k-${n}`,
    launchedAtMs: 0,
    tags: {},
  } as Instance;
}

/** What freeGpus must say: computed from scratch from the live instances. */
function expectedFree(fleet: Fleet) {
  return fleet
    .all()
    .filter((i) => i.state === 'running' && !i.draining && i.interruptAt === null)
    .map((i) => ({
      instanceId: i.id,
      free: Array.from({ length: i.gpusPerInstance }, (_, g) => g).filter((g) => !i.allocated.has(g)),
    }))
    .filter((f) => f.free.length > 0);
}

type Op =
  | { kind: 'launch'; gpus: number }
  | { kind: 'run' | 'reported' | 'terminating' | 'terminated' | 'interrupt' | 'drain'; pick: number }
  | { kind: 'allocate'; pick: number; gpu: number; owner: number }
  | { kind: 'free'; owner: number };

const pick = fc.nat();
// Launches and boots weigh more, so that most sequences hold running instances for the other operations.
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('launch' as const), gpus: fc.constantFrom(1, 2, 4, 8) }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('run' as const), pick }) },
  ...(['reported', 'terminating', 'terminated', 'interrupt', 'drain'] as const).map((kind) => ({
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant(kind), pick }),
  })),
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('allocate' as const), pick, gpu: fc.nat(7), owner: fc.nat(3) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('free' as const), owner: fc.nat(3) }) },
);

describe('Fleet.freeGpus', () => {
  it('always equals the live instances’ free GPUs, also to a listener told of the change, and is the same array until something changes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        await database.db.delete(instances);
        const fleet = new Fleet(database.db, new VirtualClock(0));
        // A listener told of a change reads the fleet after it (the local agent host joins instances that run).
        fleet.onFreed(() => {
          expect(fleet.freeGpus().map(({ instanceId, free }) => ({ instanceId, free }))).toEqual(
            expectedFree(fleet),
          );
        });
        let launches = 0;
        for (const o of ops) {
          const live = fleet.all();
          const target = 'pick' in o ? live[o.pick % Math.max(1, live.length)] : undefined;
          if (o.kind === 'launch') await fleet.record(launched(launches++, o.gpus));
          else if (o.kind === 'free') fleet.free(`lease_${o.owner}`);
          else if (!target) continue;
          else if (o.kind === 'run') await fleet.setState(target.id, 'running', { runningAt: 1 });
          // A provider's listing of a known instance (reconcile after a restart) that has booted meanwhile.
          else if (o.kind === 'reported')
            await fleet.record({
              ...launched(Number(target.id.slice(2)), target.gpusPerInstance),
              state: 'running',
              runningAtMs: 1,
            });
          else if (o.kind === 'terminating' || o.kind === 'terminated')
            await fleet.setState(target.id, o.kind);
          else if (o.kind === 'interrupt') await fleet.setState(target.id, target.state, { interruptAt: 5 });
          else if (o.kind === 'drain') await fleet.markDraining([target.id]);
          else if (o.kind === 'allocate' && o.gpu < target.gpusPerInstance && !target.allocated.has(o.gpu))
            fleet.allocate(`lease_${o.owner}`, target.id, [o.gpu]);
          const after = fleet.freeGpus();
          expect(after.map(({ instanceId, free }) => ({ instanceId, free }))).toEqual(expectedFree(fleet));
          // Asking again without a change hands out the same answer.
          expect(fleet.freeGpus()).toBe(after);
        }
      }),
      { numRuns: 100 },
    );
  });
});
