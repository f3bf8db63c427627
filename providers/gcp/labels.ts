/**
 * Broker tags on GCE instances. Tags are free-form, GCE labels are not (keys `[a-z][a-z0-9_-]{0,62}`, values
 * `[a-z0-9_-]{0,63}`: https://cloud.google.com/compute/docs/labeling-resources), so each tag is written
 * twice: as a label, sanitised, for server-side filtering, and verbatim in one instance metadata item, which is what
 * `list` reads back. Sanitising may map two tags to one label; that costs a few extra rows from the server, never a
 * wrong answer, because the exact tags are compared again on this side.
 */
import type { Tags } from '../provider.ts';

/** The tags gpubroker sets on every instance it launches, beside the broker's own `request.tags`. */
export const OWNER_TAG = 'gpubroker:broker';
export const KEY_TAG = 'gpubroker:key';
export const OFFERING_TAG = 'gpubroker:offering';

/** Metadata item holding what labels cannot: the exact tags and the launch facts. */
export const METADATA_KEY = 'gpubroker';

/** GCE allows 64 labels per resource. */
export const MAX_LABELS = 64;

const MAX_LABEL_LENGTH = 63;

export function labelKey(tag: string): string {
  const key = tag.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  // Keys must start with a letter; underscores only, because `labels.KEY` must also parse in list filters.
  return (/^[a-z]/.test(key) ? key : `t_${key}`).slice(0, MAX_LABEL_LENGTH);
}

export function labelValue(value: string): string {
  return value
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '_')
    .slice(0, MAX_LABEL_LENGTH);
}

export function labelsFor(tags: Tags): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(tags)) labels[labelKey(key)] = labelValue(value);
  return labels;
}

/**
 * A list filter (AIP-160 form) matching instances labelled with all of `tags`: one parenthesised expression per
 * label, which GCE ANDs (https://cloud.google.com/compute/docs/reference/rest/v1/instances/aggregatedList, `filter`).
 */
export function labelFilter(tags: Tags): string {
  return Object.entries(labelsFor(tags))
    .map(([key, value]) => `(labels.${key} = "${value}")`)
    .join(' ');
}

/** What gpubroker records on an instance at launch, in the `gpubroker` metadata item. */
export interface LaunchRecord {
  readonly tags: Tags;
  readonly offeringId: string;
  readonly idempotencyKey: string;
  /** Hash of the provision request, to refuse a key reused with other parameters after a restart. */
  readonly fingerprint: string;
  readonly microsPerHour: number;
}

export function encodeLaunchRecord(record: LaunchRecord): string {
  return JSON.stringify({ v: 1, ...record });
}

/** The record of an instance's metadata item, or undefined when it is missing or not one of ours. */
export function decodeLaunchRecord(text: string | null | undefined): LaunchRecord | undefined {
  if (!text) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const r = parsed as Record<string, unknown>;
  const tags = r.tags;
  if (
    r.v !== 1 ||
    typeof tags !== 'object' ||
    tags === null ||
    !Object.values(tags).every((v) => typeof v === 'string') ||
    typeof r.offeringId !== 'string' ||
    typeof r.idempotencyKey !== 'string' ||
    typeof r.fingerprint !== 'string' ||
    typeof r.microsPerHour !== 'number'
  )
    return undefined;
  return {
    tags: tags as Tags,
    offeringId: r.offeringId,
    idempotencyKey: r.idempotencyKey,
    fingerprint: r.fingerprint,
    microsPerHour: r.microsPerHour,
  };
}

export function hasTags(actual: Tags, wanted: Tags): boolean {
  return Object.entries(wanted).every(([k, v]) => actual[k] === v);
}
