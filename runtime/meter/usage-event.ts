/** What the meter ingests: events about usage intervals, each carrying the whole interval's description. */

export type UsageKind = 'lease' | 'container';

/** The fixed facts of an interval, known when it starts. */
export interface IntervalFacts {
  readonly intervalId: string;
  readonly tenantId: string;
  readonly kind: UsageKind;
  /** The lease id, or `app/function` for a container. */
  readonly subject: string;
  readonly gpu: string;
  readonly gpus: number;
  readonly cores?: number;
  readonly memoryMib?: number;
  readonly vendor: string;
  readonly region: string;
  readonly capacityType: string;
  readonly startMs: number;
}

/**
 * `start` opens an interval, `heartbeat` says it still ran at `atMs` (the meter itself checkpoints all its open
 * intervals at once instead: `UsageStore.ingest`'s `checkpoint`), `stop` ends it at `atMs`. Every event carries
 * the interval's facts, so any one of them, in any order, is enough to create the row; applying an event is a
 * max (checkpoint) or a min (end) on that row, so duplicates and reordering change nothing.
 */
export interface UsageEvent extends IntervalFacts {
  /** The meter that sent it (its checkpoints cover the interval while open); '' when none. */
  readonly meterId?: string;
  /** Unique per event: `<intervalId>:<kind>:<atMs>` from the meter; duplicates within a batch are dropped. */
  readonly id: string;
  readonly type: 'start' | 'heartbeat' | 'stop';
  readonly atMs: number;
}

export function usageEventId(intervalId: string, type: UsageEvent['type'], atMs: number): string {
  return `${intervalId}:${type}:${atMs}`;
}
