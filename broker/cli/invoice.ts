/**
 * `gpubroker invoice [--month YYYY-MM] [--tenant NAME] [--json | --csv]`: the invoices of a month (default: this
 * month, UTC), yours or (operator) every tenant's; `gpubroker invoice close MONTH` (operator) freezes a month that
 * has ended. The CSV has one row per invoice line and nothing else, so that totals are the sums of its amounts.
 */
import type { Command } from 'commander';
import { ValidationError } from '../../lib/errors.ts';
import { perHourRate } from '../../lib/money.ts';
import { type ClientFlags, withClientOptions } from '../../sdk/cli/client-flags.ts';
import { brokerClient, printJson, talkTo } from '../../sdk/cli/client-options.ts';
import type { Invoice } from '../../sdk/index.ts';
import { monthOf } from '../billing/months.ts';
import { formatMicroUsd, parseMonthFlag, plainTable } from './billing-format.ts';

export const INVOICE_CSV_HEADER =
  'tenant,month,status,gpu,function,lease,seconds,gpuSeconds,rateMicroUsd,amountMicroUsd,lateFrom';

interface InvoiceFlags extends ClientFlags {
  month?: string;
  tenant?: string;
  json?: boolean;
  csv?: boolean;
}

export function registerInvoiceCommand(program: Command): void {
  const invoice = withClientOptions(
    program
      .command('invoice')
      .description(
        'invoices of a month: yours, or (operator) every tenant’s; `invoice close MONTH` freezes one',
      ),
  )
    .option('--month <YYYY-MM>', 'the month (UTC); default: this month')
    .option('--tenant <name>', 'operators: this tenant only')
    .option('--json', 'print the API’s invoice (a list when there are several)')
    .option('--csv', `one row per invoice line: ${INVOICE_CSV_HEADER}`)
    .action(async (flags: InvoiceFlags) => {
      const month = flags.month === undefined ? monthOf(Date.now()) : parseMonthFlag('--month', flags.month);
      if (flags.json && flags.csv) throw new ValidationError('--csv', 'cannot be combined with --json');
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const invoices = await broker.invoices.get(
          month,
          flags.tenant !== undefined ? { tenant: flags.tenant } : {},
        );
        if (flags.json) return printJson(invoices.length === 1 ? invoices[0] : invoices);
        process.stdout.write(flags.csv ? renderCsv(invoices) : renderInvoices(invoices, month));
      });
    });

  withClientOptions(
    invoice
      .command('close')
      .description('close a month that has ended (operator): every tenant’s invoice of it becomes immutable')
      .argument('<month>', 'YYYY-MM (UTC), e.g. 2026-11'),
  )
    .option('--json', 'print the closed invoices as JSON (a list)')
    .action(async (text: string, _flags: unknown, command: Command) => {
      const month = parseMonthFlag('month', text);
      // `invoice` takes the flags it knows wherever they stand: --url, --token and --json apply here, the rest not.
      const flags = command.optsWithGlobals<InvoiceFlags>();
      for (const flag of ['month', 'tenant', 'csv'] as const)
        if (flags[flag] !== undefined)
          throw new ValidationError(`--${flag}`, 'is not an option of invoice close');
      const broker = brokerClient(flags);
      await talkTo(broker, async () => {
        const closed = await broker.invoices.close(month);
        if (flags.json) return printJson(closed);
        const total = closed.reduce((sum, i) => sum + i.totalMicroUsd, 0);
        process.stdout.write(
          `closed ${month}: ${closed.length} invoice${closed.length === 1 ? '' : 's'}, ${formatMicroUsd(total)} in all\n`,
        );
      });
    });
}

/** RFC 4180 quoting where a value needs it. */
const csvValue = (value: string | number | undefined) => {
  const text = value === undefined ? '' : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
};

function renderCsv(invoices: readonly Invoice[]): string {
  const rows = invoices.flatMap((i) =>
    i.lines.map((l) =>
      [
        i.tenant,
        i.month,
        i.status,
        l.gpu,
        l.function,
        l.lease,
        l.seconds,
        l.gpuSeconds,
        l.rateMicroUsd,
        l.amountMicroUsd,
        l.lateFrom,
      ]
        .map(csvValue)
        .join(','),
    ),
  );
  return `${[INVOICE_CSV_HEADER, ...rows].join('\n')}\n`;
}

function renderInvoices(invoices: readonly Invoice[], month: string): string {
  if (invoices.length === 0) return `no invoices for ${month}\n`;
  return invoices
    .map((invoice) => {
      const head = `invoice ${invoice.tenant} ${invoice.month} (${invoice.status}, price book version ${invoice.priceBookVersion})`;
      const total = `total ${formatMicroUsd(invoice.totalMicroUsd)}`;
      if (invoice.lines.length === 0) return `${head}\n  no usage\n${total}\n`;
      const table = plainTable(
        ['GPU', 'lease or function', 'seconds', 'GPU-seconds', 'USD/GPU-hour', 'amount', 'late from'],
        [2, 3, 4, 5],
      );
      for (const l of invoice.lines)
        table.push([
          l.gpu,
          l.lease ?? l.function ?? '',
          l.seconds,
          l.gpuSeconds,
          formatMicroUsd(perHourRate(l.rateMicroUsd)),
          formatMicroUsd(l.amountMicroUsd),
          l.lateFrom ?? '',
        ]);
      return `${head}\n${table.toString()}\n${total}\n`;
    })
    .join('\n');
}
