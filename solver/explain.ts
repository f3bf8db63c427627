import type { LpRelaxation } from './backends/backend.ts';
import { rowActivities } from './linear-model.ts';
import type { PlanningModel } from './model.ts';
import type { ExplanationLine } from './types.ts';

const MAX_LINES = 12;

/**
 * Why the plan looks as it does: first-period rows that have a marginal cost in the LP relaxation or are tight at
 * the plan. Coverage marginals read "what one more GPU-hour of demand costs"; quota, budget and share marginals
 * read "what one more unit of the limit would save per hour".
 */
export function explainPlan(
  pm: PlanningModel,
  values: ArrayLike<number>,
  relaxation: LpRelaxation | undefined,
): ExplanationLine[] {
  const { lp, periodHours } = pm;
  const activity = rowActivities(lp, values);
  const lines: ExplanationLine[] = [];
  for (let i = 0; i < lp.rowLower.length; i++) {
    const kind = lp.rowKinds[i];
    if (!kind || kind === 'link' || !firstPeriod(pm, i)) continue;
    const name = lp.rowNames[i] as string;
    const dual = relaxation?.rowDuals[i] ?? 0;
    const lower = lp.rowLower[i] as number;
    const upper = lp.rowUpper[i] as number;
    const act = activity[i] as number;
    const tol = 1e-6 * Math.max(1, Math.abs(act));
    const binding = Math.abs(act - lower) <= tol || Math.abs(act - upper) <= tol;
    const marginal = (Number.isFinite(lower) ? dual : -dual) / periodHours;
    if (Math.abs(marginal) < 1e-6 && !(binding && kind !== 'coverage' && kind !== 'gang')) continue;
    if (kind === 'lifetime' && !binding) continue;
    lines.push({
      constraint: name,
      kind,
      marginalUsdPerHour: round(marginal),
      bindingAtPlan: binding,
      text: describe(lp.rowLabels[i] ?? name, kind, marginal, binding),
    });
  }
  return lines
    .sort(
      (a, b) =>
        Math.abs(b.marginalUsdPerHour) - Math.abs(a.marginalUsdPerHour) ||
        a.constraint.localeCompare(b.constraint),
    )
    .slice(0, MAX_LINES);
}

/** Whether row i is a first-period row: its columns lie in period 0 (an empty row: its name says so). */
function firstPeriod(pm: PlanningModel, i: number): boolean {
  const { lp } = pm;
  const start = lp.rowStarts[i] as number;
  if (start === lp.rowStarts[i + 1]) return (lp.rowNames[i] as string).endsWith('_t1');
  return pm.colPeriod[lp.rowIndices[start] as number] === 0;
}

function describe(label: string, kind: ExplanationLine['kind'], marginal: number, binding: boolean): string {
  const usd = `$${Math.abs(marginal).toFixed(2)}`;
  switch (kind) {
    case 'coverage':
    case 'gang':
      return `${label}: ${usd} per extra GPU-hour`;
    case 'quota':
    case 'budget':
    case 'spot':
    case 'spread':
    case 'churn':
      if (Math.abs(marginal) < 1e-6) return `${label} binding`;
      return binding
        ? `${label} binding: one more unit of it would save ${usd}/h`
        : `${label}: worth ${usd}/h per unit in the LP relaxation (not tight at the rounded plan)`;
    case 'lifetime':
      return `${label} binding: young instances kept`;
  }
}

function round(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}
