// One policy of a simulation on a worker thread (simulations/simulate.ts): the TypeScript sources through tsx, as
// `GPUBROKER_BUILD=0` runs them; the thread's own loader, whatever the main thread runs under.
import { register } from 'tsx/esm/api';

register();
await import('./policy-run.ts');
