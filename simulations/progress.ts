/**
 * The progress bar of `gpubroker simulate` (cli-progress, on stderr, only when stderr is a terminal): one line per
 * policy, in simulated days, with the wall-clock ETA.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(p: { index: number; count: number; policy: string; doneMs: number; totalMs: number }): void;
  stop(): void;
}

const DAY_MS = 86_400_000;

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update: () => undefined, stop: () => undefined };
  const bars = new cliProgress.MultiBar(
    {
      stream,
      format: '{policy} [{bar}] {percentage}% | {done}/{total} days simulated | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = new Map<number, cliProgress.SingleBar>();
  const days = (ms: number) => (ms / DAY_MS).toFixed(ms < 10 * DAY_MS ? 2 : 1);
  return {
    update({ index, count, policy, doneMs, totalMs }) {
      let bar = started.get(index);
      const payload = {
        policy: `${policy} (${index + 1}/${count})`,
        done: days(doneMs),
        total: days(totalMs),
      };
      if (!bar) {
        bar = bars.create(totalMs, 0, payload);
        started.set(index, bar);
      }
      bar.update(doneMs, payload);
    },
    stop() {
      bars.stop();
    },
  };
}
