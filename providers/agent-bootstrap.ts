/**
 * How a cloud instance the broker launches joins it: the launch passes a start-up script (AWS `UserData`, GCP
 * `metadata.startup-script`, Azure `customData`) that installs Node and gpubroker and starts `gpubroker agent`
 * with a join token. The token is bound to the launch (its idempotency key): the broker accepts it once per
 * instance that launch created, from an agent that names that instance's id (read from the cloud's metadata
 * service), and from nobody else.
 *
 * `agentStartupScript` writes that script (agent/CLOUD-BOOTSTRAP.md describes it for operators). It is a pure
 * function of its arguments, so a provision repeated with the same key sends the cloud the same bytes.
 */
import { readFileSync } from 'node:fs';
import { ValidationError } from '../lib/errors.ts';
import { InvalidRequestError } from './provider-errors.ts';

export interface AgentBootstrap {
  /** The broker's URL as the instance reaches it (`https://broker.example.com`). */
  readonly brokerUrl: string;
  /** A join token bound to this launch. */
  readonly joinToken: string;
  /** The gpubroker version to install (default: the broker's own). */
  readonly version?: string;
}

export type BootstrapVendor = 'aws' | 'gcp' | 'azure';

/** The Node.js major version the script installs (gpubroker's `engines.node`). */
export const AGENT_NODE_MAJOR = 20;

/** Where the script puts things on the instance. */
export const AGENT_PATHS = {
  /** Node.js and the global npm prefix (gpubroker's bin link is `node/bin/gpubroker`). */
  prefix: '/opt/gpubroker',
  configDir: '/etc/gpubroker',
  /** The join token, root-only (0600 in a 0700 directory), written once per instance. */
  tokenFile: '/etc/gpubroker/join-token',
  stateDir: '/var/lib/gpubroker-agent',
  unitFile: '/etc/systemd/system/gpubroker-agent.service',
} as const;

export const AGENT_UNIT = 'gpubroker-agent.service';

/**
 * What each cloud takes, in bytes of the script:
 * - AWS UserData: 16 KB in raw form, before base64 (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html)
 * - GCE metadata: 256 KB per value, 512 KB for all (https://cloud.google.com/compute/docs/metadata/setting-custom-metadata#limitations)
 * - Azure customData: the base64 string decodes to at most 65,535 bytes (osProfile.customData in the Compute REST API)
 */
export const STARTUP_SCRIPT_LIMITS: Readonly<Record<BootstrapVendor, number>> = {
  aws: 16_384,
  gcp: 262_144,
  azure: 65_535,
};

/** Longest broker URL and join token the script takes; with both at their longest it still fits AWS's 16 KB. */
export const MAX_BROKER_URL_LENGTH = 2_048;
export const MAX_JOIN_TOKEN_LENGTH = 2_048;

const VENDORS: readonly BootstrapVendor[] = ['aws', 'gcp', 'azure'];
/**
 * Characters a broker URL may hold: RFC 3986's unreserved and reserved ones and `%`, less those that mean something
 * to a shell or to systemd's command-line parser (quotes, `$`, parentheses, backslash, whitespace). The URL goes
 * into the unit's ExecStart as one word (with `%` doubled, systemd's escape).
 */
const URL_CHARS = /^[A-Za-z0-9\-._~:/?#[\]@!&*+,;=%]+$/;
/** Printable ASCII without spaces: whatever the broker's token format, it is one word on one line. */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;
/** An exact npm version (semver), not a range or a tag: every instance of a launch runs the same code. */
const VERSION = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

let ownVersion: string | undefined;

/** The version of the gpubroker package this process runs (its package.json). */
export function gpubrokerVersion(): string {
  ownVersion ??= (
    JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  ).version;
  return ownVersion;
}

/** `text` as one bash word, literally: single quotes, each `'` written as `'\''`. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

/**
 * The start-up script for an instance of `vendor`: a bash script (cloud-init runs it as user data on AWS and Azure,
 * the guest agent as `startup-script` on GCE) that installs Node.js 20 and gpubroker, writes the join token to a
 * root-only file and starts `gpubroker agent` as a systemd service with `Restart=always`. Running it again changes
 * nothing that is in place. Throws ValidationError (field `agent.brokerUrl`, `agent.joinToken`, `agent.version`)
 * for a value it cannot pass safely; the result fits the vendor's size limit.
 */
export function agentStartupScript(vendor: BootstrapVendor, bootstrap: AgentBootstrap): string {
  if (!VENDORS.includes(vendor)) throw new ValidationError('vendor', `must be one of ${VENDORS.join(', ')}`);
  const brokerUrl = checkBrokerUrl(bootstrap?.brokerUrl);
  const joinToken = checkJoinToken(bootstrap.joinToken);
  const version = bootstrap.version ?? gpubrokerVersion();
  if (typeof version !== 'string' || !VERSION.test(version))
    throw new ValidationError('agent.version', 'must be an exact npm version such as 1.2.3');

  const script = render(vendor, brokerUrl, joinToken, version);
  const bytes = Buffer.byteLength(script, 'utf8');
  if (bytes > STARTUP_SCRIPT_LIMITS[vendor])
    throw new ValidationError(
      'agent',
      `the start-up script is ${bytes} bytes, more than ${vendor} takes (${STARTUP_SCRIPT_LIMITS[vendor]})`,
    );
  return script;
}

/**
 * For the cloud adapters: the script for a provision request's `agent`, undefined without one. A value the script
 * cannot take is the contract's InvalidRequestError, naming the field (`agent.brokerUrl`, …).
 */
export function startupScriptFor(
  vendor: BootstrapVendor,
  agent: AgentBootstrap | undefined,
): string | undefined {
  if (agent === undefined) return undefined;
  try {
    return agentStartupScript(vendor, agent);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    throw new InvalidRequestError(vendor, error.field, error.message.slice(error.field.length + 2));
  }
}

function checkBrokerUrl(value: unknown): string {
  const field = 'agent.brokerUrl';
  if (typeof value !== 'string' || value.length === 0) throw new ValidationError(field, 'must be a URL');
  if (value.length > MAX_BROKER_URL_LENGTH)
    throw new ValidationError(field, `at most ${MAX_BROKER_URL_LENGTH} characters`);
  if (!URL_CHARS.test(value))
    throw new ValidationError(
      field,
      'may hold only URL characters (letters, digits and -._~:/?#[]@!&*+,;=%), not quotes, $, (), \\ or whitespace',
    );
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError(field, `"${value}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new ValidationError(field, 'must be an http:// or https:// URL');
  if (url.username || url.password)
    throw new ValidationError(field, 'must not hold credentials (they would show in the process list)');
  return value;
}

function checkJoinToken(value: unknown): string {
  const field = 'agent.joinToken';
  if (typeof value !== 'string' || value.length === 0) throw new ValidationError(field, 'must be a string');
  if (value.length > MAX_JOIN_TOKEN_LENGTH)
    throw new ValidationError(field, `at most ${MAX_JOIN_TOKEN_LENGTH} characters`);
  if (!TOKEN_CHARS.test(value))
    throw new ValidationError(field, 'must be printable ASCII without whitespace');
  return value;
}

/** The systemd unit. Values in it are checked above: the URL is one word without quotes, `$` or `\`. */
function unitText(vendor: BootstrapVendor, brokerUrl: string): string {
  const p = AGENT_PATHS;
  const command = [
    `${p.prefix}/node/bin/gpubroker`,
    'agent',
    '--broker',
    brokerUrl.replaceAll('%', '%%'),
    '--token-file',
    p.tokenFile,
    '--instance-id-from',
    vendor,
    '--state-dir',
    p.stateDir,
  ].join(' ');
  return [
    '[Unit]',
    'Description=gpubroker agent: runs containers on this machine for its broker',
    'Wants=network-online.target',
    'After=network-online.target',
    // Never give up restarting (the default stops after 5 starts in 10 s).
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=simple',
    `Environment=PATH=${p.prefix}/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    'Environment=NODE_ENV=production',
    `ExecStart=${command}`,
    'Restart=always',
    'RestartSec=5',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
  ].join('\n');
}

function render(vendor: BootstrapVendor, brokerUrl: string, joinToken: string, version: string): string {
  const p = AGENT_PATHS;
  // Every value from outside is one single-quoted assignment here; the body below only reads the variables.
  return `#!/bin/bash
# gpubroker agent bootstrap (${vendor}), written by the broker that launched this instance.
# Installs Node.js ${AGENT_NODE_MAJOR}, gpubroker and bubblewrap, writes the one-time join token to a root-only file and
# starts ${AGENT_UNIT}. Safe to run again: each step first checks what is in place (GCE runs it at every boot).
set -euo pipefail
umask 077

GPUBROKER_VERSION=${shellQuote(version)}
NODE_MAJOR=${shellQuote(String(AGENT_NODE_MAJOR))}
JOIN_TOKEN=${shellQuote(joinToken)}
UNIT_TEXT=${shellQuote(unitText(vendor, brokerUrl))}

# GPUBROKER_BOOTSTRAP_ROOT: a directory standing in for / (tests only).
ROOT="\${GPUBROKER_BOOTSTRAP_ROOT:-}"
NODE_DIR="$ROOT${p.prefix}/node"
CONFIG_DIR="$ROOT${p.configDir}"
TOKEN_FILE="$ROOT${p.tokenFile}"
STATE_DIR="$ROOT${p.stateDir}"
UNIT_FILE="$ROOT${p.unitFile}"

log() { printf 'gpubroker-bootstrap: %s\\n' "$*" >&2; }
trap 'log "failed at line $LINENO"' ERR
retry() {
  local n=1
  until "$@"; do
    if [ "$n" -ge 5 ]; then return 1; fi
    sleep $((n * 5))
    n=$((n + 1))
  done
}

# One run at a time (a boot run and a manual one).
if command -v flock >/dev/null 2>&1; then
  mkdir -p "$ROOT/run"
  exec 9>"$ROOT/run/gpubroker-bootstrap.lock"
  flock 9
fi

# The join token, written once per instance: a builtin writes it (it is in no command line), and after the
# agent joined, a later run does not bring a spent token back.
mkdir -p "$CONFIG_DIR"
chmod 0700 "$CONFIG_DIR"
if [ ! -e "$CONFIG_DIR/.join-token-written" ]; then
  tmp="$(mktemp "$CONFIG_DIR/.join-token.XXXXXX")"
  printf '%s' "$JOIN_TOKEN" >"$tmp"
  chmod 0600 "$tmp"
  mv -f "$tmp" "$TOKEN_FILE"
  : >"$CONFIG_DIR/.join-token-written"
  log "join token written to ${p.tokenFile}"
fi
JOIN_TOKEN=''
mkdir -p "$STATE_DIR"
chmod 0700 "$STATE_DIR"

# Node.js: the latest $NODE_MAJOR.x from nodejs.org for this architecture, checked against its SHA-256 sum.
restart=0
node_major() { "$NODE_DIR/bin/node" -p 'process.versions.node.split(".")[0]' 2>/dev/null || true; }
if [ "$(node_major)" != "$NODE_MAJOR" ]; then
  case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) log "unsupported architecture $(uname -m)"; exit 1 ;;
  esac
  if ! command -v curl >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      export DEBIAN_FRONTEND=noninteractive
      retry apt-get update -q
      retry apt-get install -y -q curl ca-certificates
    elif command -v dnf >/dev/null 2>&1; then retry dnf install -y curl
    elif command -v yum >/dev/null 2>&1; then retry yum install -y curl
    else log "curl is missing and there is no apt-get, dnf or yum to install it"; exit 1
    fi
  fi
  dist="https://nodejs.org/dist/latest-v$NODE_MAJOR.x"
  work="$(mktemp -d)"
  retry curl -fsSL --proto '=https' --tlsv1.2 -o "$work/SHASUMS256.txt" "$dist/SHASUMS256.txt"
  line="$(grep -E "^[0-9a-f]{64}  node-v$NODE_MAJOR\\.[0-9]+\\.[0-9]+-linux-$arch\\.tar\\.gz\\$" "$work/SHASUMS256.txt" | head -n 1 || true)"
  if [ -z "$line" ]; then log "no linux-$arch tarball listed in $dist/SHASUMS256.txt"; exit 1; fi
  tarball="\${line##* }"
  retry curl -fsSL --proto '=https' --tlsv1.2 -o "$work/$tarball" "$dist/$tarball"
  (cd "$work" && printf '%s\\n' "$line" | sha256sum -c --quiet -)
  rm -rf "$NODE_DIR.new"
  mkdir -p "$NODE_DIR.new"
  tar -xzf "$work/$tarball" -C "$NODE_DIR.new" --strip-components=1 --no-same-owner
  rm -rf "$NODE_DIR"
  mv "$NODE_DIR.new" "$NODE_DIR"
  rm -rf "$work"
  log "installed Node.js $("$NODE_DIR/bin/node" --version)"
  restart=1
fi
export PATH="$NODE_DIR/bin:$PATH"

# gpubroker, at the version the broker named.
installed_version() {
  "$NODE_DIR/bin/node" -p 'require(process.argv[1]).version' "$NODE_DIR/lib/node_modules/gpubroker/package.json" 2>/dev/null || true
}
if [ "$(installed_version)" != "$GPUBROKER_VERSION" ]; then
  retry "$NODE_DIR/bin/npm" install --global --prefix "$NODE_DIR" --no-fund --no-audit --no-update-notifier "gpubroker@$GPUBROKER_VERSION"
  log "installed gpubroker $GPUBROKER_VERSION"
  restart=1
fi

# bubblewrap: the agent runs every container in it (and refuses to start without it).
if ! command -v bwrap >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    retry apt-get update -q
    retry apt-get install -y -q bubblewrap
  elif command -v dnf >/dev/null 2>&1; then retry dnf install -y bubblewrap
  elif command -v yum >/dev/null 2>&1; then retry yum install -y bubblewrap
  else log "bubblewrap is missing and there is no apt-get, dnf or yum to install it"; exit 1
  fi
  log "installed bubblewrap"
  restart=1
fi

# Containers with network egress share the machine's network: keep them (their users, 200000-249999) off the
# cloud's metadata service, which hands out the instance's credentials. The agent itself (root) still reaches it.
if command -v iptables >/dev/null 2>&1; then
  rule="OUTPUT -d 169.254.169.254 -m owner --uid-owner 200000-249999 -j REJECT"
  # shellcheck disable=SC2086
  iptables -C $rule 2>/dev/null || iptables -I $rule || log "could not keep containers off the metadata service"
else
  log "iptables is missing: containers can reach the cloud's metadata service"
fi

# The service: written when it differs, enabled (so a reboot starts it), started without waiting (cloud-init
# runs this from a unit of the boot itself).
if [ "$(cat "$UNIT_FILE" 2>/dev/null || true)" != "$UNIT_TEXT" ]; then
  mkdir -p "$(dirname "$UNIT_FILE")"
  printf '%s\\n' "$UNIT_TEXT" >"$UNIT_FILE.tmp"
  chmod 0644 "$UNIT_FILE.tmp"
  mv -f "$UNIT_FILE.tmp" "$UNIT_FILE"
  systemctl daemon-reload
  restart=1
fi
systemctl enable ${AGENT_UNIT}
if [ "$restart" = 1 ]; then
  systemctl restart --no-block ${AGENT_UNIT}
else
  systemctl start --no-block ${AGENT_UNIT}
fi
log "${AGENT_UNIT} started"
`;
}
