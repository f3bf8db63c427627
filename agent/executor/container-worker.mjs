/**
 * The process inside a container, spawned by LocalExecutor (`node container-worker.mjs <bundle file URL>`): imports
 * the app's bundle, finds the function named by GPUBROKER_FUNCTION and runs the inputs the executor sends over the
 * IPC channel, as many at once as it sends. Plain JavaScript, so that a container starts without a TypeScript
 * loader (cold start); the message protocol is described in local-executor.ts.
 */
import { whyNotSendable } from './sendable.mjs';

const bundleUrl = process.argv[2];
const functionName = process.env.GPUBROKER_FUNCTION;

// The executor is gone: nobody can receive results any more, so the container ends with it.
process.on('disconnect', () => process.exit(0));

let implementation;
try {
  implementation = await load();
} catch (error) {
  if (process.connected) process.send({ kind: 'load-failed', ...describe(error) }, () => process.exit(1));
  else process.exit(1);
}
if (implementation) {
  process.on('message', (message) => {
    if (message?.kind === 'call') void run(message.callId, message.args);
  });
  send({ kind: 'ready' });
}

/** The function: from an object in the bundle with `__gpubrokerFunction(name)` (the SDK's App), or a named export. */
async function load() {
  if (!bundleUrl || !functionName) throw new Error('the worker needs a bundle URL and GPUBROKER_FUNCTION');
  const bundle = await import(bundleUrl);
  for (const value of Object.values(bundle)) {
    if (typeof value?.__gpubrokerFunction !== 'function') continue;
    const found = value.__gpubrokerFunction(functionName);
    if (typeof found === 'function') return found;
  }
  if (typeof bundle[functionName] === 'function') return bundle[functionName];
  const exported = Object.keys(bundle).filter((key) => typeof bundle[key] === 'function');
  throw new Error(
    `function "${functionName}" not found in bundle ${bundleUrl} (exported functions: ${exported.join(', ') || 'none'})`,
  );
}

async function run(callId, args) {
  let value;
  // How long the function itself took (ms, fractional): the executor sizes what it queues next to this container by it.
  const start = performance.now();
  try {
    value = await implementation(...args);
  } catch (error) {
    send({ kind: 'error', callId, ranMs: performance.now() - start, ...describe(error) });
    return;
  }
  const ranMs = performance.now() - start;
  const why = whyNotSendable(value, 'the return value');
  if (why) {
    send({ kind: 'error', callId, ...cannotSend(why) });
    return;
  }
  try {
    send({ kind: 'result', callId, value, ranMs });
  } catch (error) {
    send({ kind: 'error', callId, ...cannotSend(describe(error).message) });
  }
}

function cannotSend(why) {
  return {
    name: 'TypeError',
    message: `${functionName} returned a value that cannot be sent back: ${why}`,
    stack: undefined,
  };
}

function describe(error) {
  if (error instanceof Error || (typeof error === 'object' && error !== null && 'message' in error))
    return {
      message: safeString(error.message),
      stack: typeof error.stack === 'string' ? error.stack : undefined,
      name: typeof error.name === 'string' ? error.name : 'Error',
    };
  return { message: safeString(error), stack: undefined, name: 'Error' };
}

function safeString(value) {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function send(message) {
  if (process.connected) process.send(message);
}
