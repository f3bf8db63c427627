import { getPriority, setPriority } from 'node:os';

/**
 * Runs the child `pid` `niceness` steps below this process (capped at 19), so that its work never starves this
 * one. Where that is not permitted, or the child is gone, it keeps this process's priority.
 */
export function runBelowThisProcess(pid: number | undefined, niceness: number): void {
  if (pid === undefined || niceness <= 0) return;
  try {
    setPriority(pid, Math.min(19, getPriority() + niceness));
  } catch {
    // Not permitted or already gone.
  }
}
