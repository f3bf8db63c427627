/**
 * How long a request for a GPU waits, given the load on a GPU type and the GPUs held for it: an M/G/∞ estimate.
 *
 *   K ~ Poisson(load)          GPUs busy when a request arrives
 *   P(wait) = P(K ≥ held)      it finds every held GPU busy
 *   E[wait] = P(wait) × boot   and then waits for one instance to boot
 *
 * Assumptions: requests (one GPU each) arrive as a Poisson process and hold their GPU for any length of time, so
 * the GPUs busy are Poisson with mean load = arrival rate × mean holding time (Little's law; the M/G/∞ result does
 * not depend on the holding-time distribution), and an arrival sees that distribution (PASTA). A request that finds
 * no free held GPU gets a freshly booted one after one boot: boots never stock out and never queue behind each
 * other, so the system never turns a request away. Pure and monotone: more GPUs held never wait longer.
 */

/** P(K ≥ held) for K ~ Poisson(load): the share of requests that find every held GPU busy. */
export function waitProbability(loadGpus: number, heldGpus: number): number {
  if (heldGpus <= 0) return 1;
  if (loadGpus <= 0) return 0;
  // Far above the mean the tail is below 1e-30: stop summing there.
  const last = Math.ceil(loadGpus + 40 * Math.sqrt(loadGpus) + 40);
  if (heldGpus > last) return 0;
  // log P(K = k) = −load + k·ln(load) − ln(k!), summed from the far end down, so that P(K ≥ held + 1) is a partial
  // sum of P(K ≥ held): the estimate never rises with the GPUs held, rounding included.
  const logLoad = Math.log(loadGpus);
  let logFactorial = 0;
  for (let k = 2; k <= last; k++) logFactorial += Math.log(k);
  let tail = 0;
  for (let k = last; k >= heldGpus; k--) {
    tail += Math.exp(-loadGpus + k * logLoad - logFactorial);
    logFactorial -= Math.log(k);
  }
  return Math.min(1, tail);
}

/** E[wait] in whole ms: the share that waits times one boot. */
export function expectedWaitMs(loadGpus: number, heldGpus: number, bootMs: number): number {
  return Math.round(waitProbability(loadGpus, heldGpus) * bootMs);
}
