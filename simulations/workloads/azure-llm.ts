/**
 * The Azure LLM inference traces of 2023 (`azure-code`, `azure-conv`): one hour of requests, each a call whose
 * service time comes from its tokens at a configurable throughput:
 *   serviceMs = 1000 × (ContextTokens / prefillTokensPerSecond + GeneratedTokens / tokensPerSecond)
 * Defaults: prefill 5,000 tokens/s, generation 50 tokens/s per request (a 70B-class model on one H100 with
 * batching), and 8 requests per container at once (the function's concurrency: continuous batching).
 */
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../../lib/errors.ts';
import { type CsvTable, Fields, readCsv, requireColumns } from './csv.ts';
import { byArrival, CALL_FUNCTION_DEFAULTS, type CallRequest, HOUR_MS, type Workload } from './workload.ts';

export const AZURE_CODE_PATH = fileURLToPath(new URL('../traces/azure-llm-2023-code.csv', import.meta.url));
export const AZURE_CONV_PATH = fileURLToPath(new URL('../traces/azure-llm-2023-conv.csv', import.meta.url));

export const LLM_COLUMNS = ['TIMESTAMP', 'ContextTokens', 'GeneratedTokens'] as const;

export interface Throughput {
  /** Generated tokens per second of one request. */
  readonly tokensPerSecond: number;
  /** Context (prompt) tokens per second of one request. */
  readonly prefillTokensPerSecond: number;
}

export const DEFAULT_THROUGHPUT: Throughput = { tokensPerSecond: 50, prefillTokensPerSecond: 5_000 };
export const LLM_CONCURRENCY = 8;

export function loadAzureLlm(
  file: string,
  name: string,
  throughput: Throughput = DEFAULT_THROUGHPUT,
  gpu = 'H100',
): Workload {
  return llmWorkload(readCsv(file), name, throughput, gpu);
}

export function llmWorkload(table: CsvTable, name: string, throughput: Throughput, gpu: string): Workload {
  if (!(throughput.tokensPerSecond > 0))
    throw new ValidationError('--throughput', 'must be a positive number of tokens per second');
  if (!(throughput.prefillTokensPerSecond > 0))
    throw new ValidationError('--prefill-throughput', 'must be a positive number of tokens per second');
  requireColumns(table, LLM_COLUMNS);
  const arrivals = table.rows.map((row) => {
    const f = new Fields(table, row);
    const context = f.number('ContextTokens', 0, 10_000_000);
    const generated = f.number('GeneratedTokens', 0, 10_000_000);
    return {
      atMs: f.utcMs('TIMESTAMP'),
      serviceMs: Math.round(
        1000 * (context / throughput.prefillTokensPerSecond + generated / throughput.tokensPerSecond),
      ),
    };
  });
  const first = arrivals.reduce((min, a) => Math.min(min, a.atMs), Number.POSITIVE_INFINITY);
  const startMs = Number.isFinite(first) ? Math.floor(first / 60_000) * 60_000 : 0;
  const requests: CallRequest[] = byArrival(
    arrivals.map((a) => ({ kind: 'call', atMs: a.atMs - startMs, serviceMs: a.serviceMs })),
  );
  return {
    name,
    startMs,
    durationMs: Math.max(HOUR_MS, (requests.at(-1)?.atMs ?? 0) + 1000),
    gpu,
    function: { ...CALL_FUNCTION_DEFAULTS, concurrency: LLM_CONCURRENCY },
    requests,
  };
}
