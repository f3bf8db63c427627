/**
 * Region groups: demand is stated per group (`us`, `eu`, `asia`, …), capacity is bought per region.
 * The group is derived from the region's name; a policy may override the mapping of any region.
 */
export type RegionGroupOverrides = Readonly<Record<string, string>>;

const AZURE_GROUPS: Readonly<Record<string, string>> = {
  centralus: 'us',
  eastus: 'us',
  eastus2: 'us',
  northcentralus: 'us',
  southcentralus: 'us',
  westcentralus: 'us',
  westus: 'us',
  westus2: 'us',
  westus3: 'us',
  canadacentral: 'ca',
  canadaeast: 'ca',
  brazilsouth: 'sa',
  northeurope: 'eu',
  westeurope: 'eu',
  uksouth: 'eu',
  ukwest: 'eu',
  francecentral: 'eu',
  germanywestcentral: 'eu',
  swedencentral: 'eu',
  switzerlandnorth: 'eu',
  norwayeast: 'eu',
  polandcentral: 'eu',
  italynorth: 'eu',
  eastasia: 'asia',
  southeastasia: 'asia',
  japaneast: 'asia',
  japanwest: 'asia',
  koreacentral: 'asia',
  centralindia: 'asia',
  southindia: 'asia',
  australiaeast: 'oceania',
  australiasoutheast: 'oceania',
  uaenorth: 'me',
  qatarcentral: 'me',
  israelcentral: 'me',
  southafricanorth: 'af',
};

/** Prefix rules for AWS and GCP region names, most specific first. */
const PREFIX_GROUPS: ReadonlyArray<readonly [RegExp, string]> = [
  [/^(us|us-gov)-/, 'us'],
  [/^ca-|^northamerica-/, 'ca'],
  [/^sa-|^southamerica-/, 'sa'],
  [/^eu-|^europe-/, 'eu'],
  [/^ap-southeast-(2|4|6)$|^australia-/, 'oceania'],
  [/^ap-|^asia-/, 'asia'],
  [/^me-|^il-/, 'me'],
  [/^af-|^africa-/, 'af'],
];

/** The group of a region, or undefined when neither the overrides nor the naming rules know it. */
export function regionGroupOf(
  vendor: string,
  region: string,
  overrides: RegionGroupOverrides = {},
): string | undefined {
  const override = overrides[`${vendor}/${region}`] ?? overrides[region];
  if (override) return override;
  if (vendor === 'azure') return AZURE_GROUPS[region];
  for (const [pattern, group] of PREFIX_GROUPS) if (pattern.test(region)) return group;
  return undefined;
}
