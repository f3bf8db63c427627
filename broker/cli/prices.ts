/**
 * `gpubroker prices get | set FILE | history`: the broker's versioned price book. Reading needs any token; setting
 * and the history need an operator token. A new version prices usage from the month it is in force at the end of.
 */
import type { Command } from 'commander';
import { perHourRate } from '../../lib/money.ts';
import { type ClientFlags, withClientOptions } from '../../sdk/cli/client-flags.ts';
import { brokerClient, printJson, talkTo } from '../../sdk/cli/client-options.ts';
import type { PriceBookVersion } from '../../sdk/index.ts';
import { formatMicroUsd, plainTable } from './billing-format.ts';
import { describeVersion, readJsonObjectFile, renderDiff, renderHistory } from './versions.ts';

const DEFAULTS = 'the defaults (catalog median on-demand price per GPU + 20 % markup)';

interface PricesFlags extends ClientFlags {
  json?: boolean;
}

export function registerPricesCommand(program: Command): void {
  const prices = program
    .command('prices')
    .description('the price book: what tenants pay per GPU-second (versioned, with who and when)');

  withClientOptions(
    prices.command('get').description('print the price book in force and the effective rate per GPU type'),
  )
    .option('--json', 'print the answer as JSON ({ version, book, gpuRates, createdAtMs, createdBy, diff })')
    .action(async (flags: PricesFlags) => {
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const current = await broker.prices.get();
        if (flags.json) return printJson(current);
        process.stdout.write(
          `${describeVersion('price book', current, DEFAULTS)}\n${JSON.stringify(current.book, null, 2)}\n${renderRates(current)}`,
        );
      });
    });

  withClientOptions(
    prices
      .command('set')
      .description(
        'set a new price book version from a JSON file (operator); fields left out take their defaults',
      )
      .argument('<file>', 'price book JSON, e.g. { "markup": 0.3, "gpuMicrosPerSecond": { "H100": 1200 } }'),
  )
    .option('--json', 'print the new version as JSON')
    .action(async (file: string, flags: PricesFlags) => {
      const book = readJsonObjectFile(file, 'the price book', '{ "markup": 0.3 }');
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const version = await broker.prices.set(book);
        if (flags.json) return printJson(version);
        process.stdout.write(`${describeVersion('price book', version, DEFAULTS)}\n${renderDiff(version)}`);
      });
    });

  withClientOptions(
    prices.command('history').description('every stored price book version, newest first (operator)'),
  )
    .option('--json', 'print the answer as JSON ({ versions })')
    .action(async (flags: PricesFlags) => {
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const versions = await broker.prices.history();
        if (flags.json) return printJson({ versions });
        process.stdout.write(renderHistory('price book', versions, 'right'));
      });
    });
}

/** Effective rates before region and capacity multipliers: micro-USD per GPU-second and USD per GPU-hour. */
function renderRates(v: PriceBookVersion): string {
  const table = plainTable(['GPU', 'micro-USD/GPU-s', 'USD/GPU-hour'], [1, 2]);
  for (const [gpu, rate] of Object.entries(v.gpuRates))
    table.push([gpu, rate, formatMicroUsd(perHourRate(rate))]);
  return `${table.toString()}\n`;
}
