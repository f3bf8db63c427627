import type { LinearModel } from './linear-model.ts';

/** Writes the model in CPLEX LP format, with the formulation's row and column names. */
export function toLpFormat(model: LinearModel, comment?: string): string {
  const out: string[] = [];
  if (comment) for (const line of comment.split('\n')) out.push(`\\ ${line}`);
  out.push('Minimize');
  out.push(
    ...wrap(
      ' obj:',
      [...model.colCost].flatMap((c, j) => (c === 0 ? [] : [term(c, model.colNames[j] as string)])),
    ),
  );
  out.push('Subject To');
  for (let i = 0; i < model.rowNames.length; i++) {
    const terms: string[] = [];
    for (let k = model.rowStarts[i] as number; k < (model.rowStarts[i + 1] as number); k++) {
      terms.push(term(model.rowValues[k] as number, model.colNames[model.rowIndices[k] as number] as string));
    }
    if (terms.length === 0) terms.push(`0 ${model.colNames[0]}`);
    const name = model.rowNames[i] as string;
    const lower = model.rowLower[i] as number;
    const upper = model.rowUpper[i] as number;
    if (lower === upper) out.push(...wrap(` ${name}:`, terms, `= ${num(lower)}`));
    else if (Number.isFinite(lower) && Number.isFinite(upper)) {
      out.push(...wrap(` ${name}_lo:`, terms, `>= ${num(lower)}`));
      out.push(...wrap(` ${name}_hi:`, terms, `<= ${num(upper)}`));
    } else if (Number.isFinite(lower)) out.push(...wrap(` ${name}:`, terms, `>= ${num(lower)}`));
    else if (Number.isFinite(upper)) out.push(...wrap(` ${name}:`, terms, `<= ${num(upper)}`));
  }
  out.push('Bounds');
  model.colNames.forEach((name, j) => {
    const lower = model.colLower[j] as number;
    const upper = model.colUpper[j] as number;
    if (lower === upper) out.push(` ${name} = ${num(lower)}`);
    else if (Number.isFinite(upper))
      out.push(` ${Number.isFinite(lower) ? num(lower) : '-inf'} <= ${name} <= ${num(upper)}`);
    else if (lower !== 0) out.push(` ${name} >= ${Number.isFinite(lower) ? num(lower) : '-inf'}`);
  });
  const integers = model.colNames.filter((_, j) => model.colInteger[j]);
  if (integers.length > 0) out.push('Generals', ...wrap('', integers));
  out.push('End', '');
  return out.join('\n');
}

function num(v: number): string {
  return Object.is(v, -0) ? '0' : String(v);
}

function term(coef: number, name: string): string {
  return `${coef < 0 ? '-' : '+'} ${num(Math.abs(coef))} ${name}`;
}

/** Keeps lines short: LP readers limit line length. */
function wrap(head: string, terms: string[], tail?: string): string[] {
  const lines: string[] = [];
  let line = head;
  for (const t of terms) {
    if (line.length + t.length > 200) {
      lines.push(line);
      line = '   ';
    }
    line += ` ${t}`;
  }
  if (tail) line += ` ${tail}`;
  lines.push(line);
  return lines;
}
