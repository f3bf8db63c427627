/**
 * Checks over one subject's usage intervals (a lease's, or a function's), as billing sees them (start to observed
 * end): how many GPUs were billed at once at most (never more than the subject held: no double billing), and the
 * time a crash left unbilled (from an interval closed at its last checkpoint to the next one of the subject).
 * Pure functions, for tests, benchmarks and whoever audits a meter.
 */

export interface BilledSpan {
  readonly startMs: number;
  /** The observed end (`observedEndMs`): the stop, or the last checkpoint. */
  readonly endMs: number;
  readonly gpus: number;
  /** `recovered`: closed at its last checkpoint after a crash. */
  readonly endedBy?: string | null;
}

/** The most GPUs the spans bill at one moment (spans are half-open: one ending as another starts is not both). */
export function peakBilledGpus(spans: readonly BilledSpan[]): number {
  const edges: [number, number][] = [];
  for (const s of spans) {
    if (s.endMs <= s.startMs) continue;
    edges.push([s.startMs, s.gpus], [s.endMs, -s.gpus]);
  }
  // At one moment, ends before starts.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let peak = 0;
  for (const [, delta] of edges) {
    now += delta;
    peak = Math.max(peak, now);
  }
  return peak;
}

/**
 * The unbilled time after each span a crash closed (`recovered`): up to the start of the subject's next span that
 * starts at or after its end. A recovered span with no later one (the subject ended with the crash) gives none.
 */
export function gapsAfterCrashes(spans: readonly BilledSpan[]): { fromMs: number; toMs: number }[] {
  const sorted = [...spans].sort((a, b) => a.startMs - b.startMs);
  const gaps: { fromMs: number; toMs: number }[] = [];
  for (const span of sorted) {
    if (span.endedBy !== 'recovered') continue;
    const next = sorted.find((s) => s !== span && s.startMs >= span.endMs);
    if (next) gaps.push({ fromMs: span.endMs, toMs: next.startMs });
  }
  return gaps;
}
