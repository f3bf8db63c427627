/**
 * A function's queued inputs, shared fairly between tenants: `take` serves the tenants with queued inputs in
 * round-robin, each tenant's inputs first in, first out. Inputs put back for a retry go first (they were already
 * taken in their fair turn). Every operation is O(1).
 */

export interface QueuedInput {
  readonly callId: string;
  /** Whose turn it counts against. */
  readonly tenantId: string;
}

export class InputQueue<T extends QueuedInput> {
  /** Retried inputs, served before any tenant's turn. */
  private readonly retries = new Map<string, T>();
  /**
   * Tenants with queued inputs in round-robin order (Map keeps insertion order: serving a tenant moves it to the
   * end), each with its inputs in arrival order.
   */
  private readonly tenants = new Map<string, Map<string, T>>();
  private readonly where = new Map<string, string | null>();

  get size(): number {
    return this.where.size;
  }

  has(callId: string): boolean {
    return this.where.has(callId);
  }

  /** Inputs one tenant has queued (retries included). */
  sizeOf(tenantId: string): number {
    let n = this.tenants.get(tenantId)?.size ?? 0;
    for (const input of this.retries.values()) if (input.tenantId === tenantId) n++;
    return n;
  }

  /** Adds an input at the end of its tenant's queue, or at the very front with `retry`. */
  enqueue(input: T, options: { retry?: boolean } = {}): void {
    if (this.where.has(input.callId)) throw new Error(`call ${input.callId} is already queued`);
    if (options.retry) {
      this.retries.set(input.callId, input);
      this.where.set(input.callId, null);
      return;
    }
    let queue = this.tenants.get(input.tenantId);
    if (!queue) {
      queue = new Map();
      this.tenants.set(input.tenantId, queue);
    }
    queue.set(input.callId, input);
    this.where.set(input.callId, input.tenantId);
  }

  /** The next input in fair order, removed from the queue. */
  take(): T | undefined {
    if (this.retries.size > 0)
      for (const [callId, input] of this.retries) {
        this.retries.delete(callId);
        this.where.delete(callId);
        return input;
      }
    for (const [tenantId, queue] of this.tenants) {
      const input = queue.values().next().value as T;
      queue.delete(input.callId);
      this.where.delete(input.callId);
      // To the end of the round-robin (nothing to move when it is the only tenant waiting).
      if (queue.size === 0) this.tenants.delete(tenantId);
      else if (this.tenants.size > 1) {
        this.tenants.delete(tenantId);
        this.tenants.set(tenantId, queue);
      }
      return input;
    }
    return undefined;
  }

  /** Removes a queued input; returns it, or undefined when it was not queued. */
  cancel(callId: string): T | undefined {
    if (!this.where.has(callId)) return undefined;
    const tenantId = this.where.get(callId);
    this.where.delete(callId);
    if (tenantId === null || tenantId === undefined) {
      const input = this.retries.get(callId);
      this.retries.delete(callId);
      return input;
    }
    const queue = this.tenants.get(tenantId) as Map<string, T>;
    const input = queue.get(callId);
    queue.delete(callId);
    if (queue.size === 0) this.tenants.delete(tenantId);
    return input;
  }

  /** Removes and returns every queued input (retries first, then in fair order). */
  drain(): T[] {
    const all: T[] = [];
    for (let input = this.take(); input; input = this.take()) all.push(input);
    return all;
  }
}
