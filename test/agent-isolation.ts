/**
 * The `--isolation` a test's `gpubroker agent` gets: bubblewrap where this machine can isolate (root, bubblewrap,
 * cgroups: CI installs bubblewrap), none elsewhere, so that the agent tests run on a developer's machine too.
 */
import { BubblewrapSandbox } from '../agent/executor/sandbox/bubblewrap.ts';

let mode: 'bubblewrap' | 'none' | undefined;

export function agentIsolation(): 'bubblewrap' | 'none' {
  if (!mode) {
    try {
      BubblewrapSandbox.check();
      mode = 'bubblewrap';
    } catch {
      mode = 'none';
    }
  }
  return mode;
}
