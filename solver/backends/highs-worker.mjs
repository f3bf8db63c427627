// A worker thread that solves MIPs with its own HiGHS instance, for highs-pool.ts. Plain JavaScript so that it
// starts under any loader (tsx, vitest, plain node): it receives HiGHS model data already converted, solves, and
// posts the status, solution and bound back.
import { parentPort } from 'node:worker_threads';
import loadHighs from 'highs';

const highs = await loadHighs();

parentPort.on('message', ({ id, data, options, deadline }) => {
  const model = highs.createModel();
  try {
    // The time limit counts from when the task starts here, not from when it was queued.
    model.options.set({ ...options, time_limit: Math.max(0.001, (deadline - Date.now()) / 1000) });
    model.passModel(data);
    model.run();
    const status = model.getModelStatus();
    const hasSolution = Number(model.info.get('primal_solution_status')) === 2;
    const values = hasSolution ? Float64Array.from(model.getSolution().colValue) : undefined;
    const bound = Number(model.info.get('mip_dual_bound'));
    parentPort.postMessage({ id, status, values, bound }, values ? [values.buffer] : []);
  } catch (error) {
    parentPort.postMessage({ id, error: String(error?.message ?? error) });
  } finally {
    model.dispose();
  }
});
parentPort.postMessage({ ready: true });
