/**
 * `gpubroker run examples/square.ts` against `npm start`: squares 10,000 numbers in containers on H100s and prints
 * their sum, 333283335000. The second run starts warm (the containers of the first are still up).
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
