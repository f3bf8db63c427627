/**
 * Runs async critical sections one at a time, in call order. The broker decides allocations in memory and then
 * writes them; without this, two requests could both be given the same free GPU.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(section: () => Promise<T>): Promise<T> {
    const result = this.tail.then(section, section);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
