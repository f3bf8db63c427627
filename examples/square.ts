/**
 * `gpubroker run examples/square.ts` against `npm start`: squares 10,000 numbers in containers on H100s and prints
 * their sum, 333283335000. A second run within a minute starts warm: the app of a run keeps its containers until
 * their scale-down window (60 s) has passed.
 */
import { App } from 'gpubroker';

export const app = new App('demo');

export const square = app.function({ gpu: 'H100' }, async (x: number) => {
  console.error('squaring', x);
  return x * x;
});

export async function main() {
  let sum = 0;
  for await (const y of square.map(Array.from({ length: 10_000 }, (_, i) => i))) sum += y;
  console.log(sum);
}
