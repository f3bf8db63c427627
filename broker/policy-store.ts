/** The broker policy's versions (see versioned-store.ts). */
import type { Clock } from '../lib/clock.ts';
import type { Database } from './db/open-database.ts';
import { policies } from './db/schema.ts';
import { type BrokerPolicy, brokerPolicy } from './policy.ts';
import { type Version, VersionedStore } from './versioned-store.ts';

export type PolicyVersion = Version<'policy', BrokerPolicy>;

export class PolicyStore extends VersionedStore<'policy', BrokerPolicy> {
  constructor(db: Database, clock: Clock) {
    super(db, clock, { table: policies, field: 'policy', parse: brokerPolicy });
  }
}
