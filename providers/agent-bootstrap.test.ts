/**
 * The start-up script the clouds run: its text, its quoting of hostile values, its size against each cloud's limit,
 * and the script itself run by bash in a scratch directory standing in for `/`, with stand-ins for curl (serving a
 * Node.js tarball built here), npm, systemctl and uname that record their command lines.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../lib/errors.ts';
import {
  AGENT_PATHS,
  type AgentBootstrap,
  agentStartupScript,
  type BootstrapVendor,
  gpubrokerVersion,
  MAX_BROKER_URL_LENGTH,
  MAX_JOIN_TOKEN_LENGTH,
  STARTUP_SCRIPT_LIMITS,
  shellQuote,
} from './agent-bootstrap.ts';

const BOOTSTRAP: AgentBootstrap = {
  brokerUrl: 'https://broker.example.com:8443',
  joinToken: 'gbj_0123456789abcdef',
  version: '1.2.3',
};
const VENDORS: BootstrapVendor[] = ['aws', 'gcp', 'azure'];
/** Printable, and as hostile to a shell as printable gets (`${IFS}` is the shell's, not a placeholder). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: the shell's ${IFS}, meant literally
const HOSTILE_TOKEN = "a'b\"c$(touch${IFS}pwned-1)`touch${IFS}pwned-2`;touch${IFS}pwned-3&&$HOME\\n|>x<y'";

function execStart(script: string): string {
  const line = script.split('\n').find((l) => l.startsWith('ExecStart='));
  if (!line) throw new Error('no ExecStart line');
  return line.slice('ExecStart='.length);
}

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

describe('agentStartupScript', () => {
  it.each(VENDORS)(
    '%s: a bash script that runs gpubroker agent from the unit, the token only in a file',
    (vendor) => {
      const script = agentStartupScript(vendor, BOOTSTRAP);
      expect(script.startsWith('#!/bin/bash\n')).toBe(true);
      expect(execStart(script)).toBe(
        `/opt/gpubroker/node/bin/gpubroker agent --broker https://broker.example.com:8443 --token-file /etc/gpubroker/join-token --instance-id-from ${vendor} --state-dir /var/lib/gpubroker-agent`,
      );
      expect(script).toContain('Restart=always');
      expect(script).toContain('"gpubroker@$GPUBROKER_VERSION"');
      expect(script).toContain("GPUBROKER_VERSION='1.2.3'");
      // The token appears once: in its own assignment, which a builtin writes to the file.
      expect(script.split(BOOTSTRAP.joinToken)).toHaveLength(2);
      expect(script).toContain(`JOIN_TOKEN='${BOOTSTRAP.joinToken}'`);
      expect(execStart(script)).not.toContain(BOOTSTRAP.joinToken);
      execFileSync('bash', ['-n'], { input: script });
    },
  );

  it('is the same text for the same bootstrap (a repeated provision sends the same bytes)', () => {
    for (const vendor of VENDORS)
      expect(agentStartupScript(vendor, { ...BOOTSTRAP })).toBe(agentStartupScript(vendor, BOOTSTRAP));
    expect(agentStartupScript('aws', { ...BOOTSTRAP, joinToken: 'other-token' })).not.toBe(
      agentStartupScript('aws', BOOTSTRAP),
    );
  });

  it("installs the broker's own version unless told another", () => {
    const { version: _, ...noVersion } = BOOTSTRAP;
    expect(agentStartupScript('gcp', noVersion)).toContain(`GPUBROKER_VERSION='${gpubrokerVersion()}'`);
    expect(gpubrokerVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('quotes every value: a hostile token stays one literal word', () => {
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    const script = agentStartupScript('aws', { ...BOOTSTRAP, joinToken: HOSTILE_TOKEN });
    const echoed = execFileSync(
      'bash',
      ['-c', `${script.split('\nUNIT_TEXT=')[0]}\nprintf '%s' "$JOIN_TOKEN"`],
      {
        cwd: mkdtempSync(join(tmpdir(), 'gpubroker-quote-')),
      },
    ).toString();
    expect(echoed).toBe(HOSTILE_TOKEN);
  });

  it('doubles % in the URL for systemd, which reads %x as a specifier', () => {
    const script = agentStartupScript('azure', { ...BOOTSTRAP, brokerUrl: 'https://b.example.com/a%20b' });
    expect(execStart(script)).toContain('--broker https://b.example.com/a%%20b ');
  });

  it.each([
    ['a quote', "https://b.example.com/'x"],
    ['a double quote', 'https://b.example.com/"x'],
    ['a command substitution', 'https://b.example.com/$(reboot)'],
    ['a backtick', 'https://b.example.com/`reboot`'],
    ['a variable', 'https://b.example.com/$HOME'],
    ['a newline', 'https://b.example.com/\nExecStartPre=/bin/sh'],
    ['a space', 'https://b.example.com/ --token x'],
    ['a backslash', 'https://b.example.com/\\x'],
    ['credentials', 'https://user:secret@b.example.com'],
    ['another scheme', 'file:///etc/passwd'],
    ['no URL at all', 'broker'],
    ['nothing', ''],
    ['too many characters', `https://b.example.com/${'x'.repeat(MAX_BROKER_URL_LENGTH)}`],
  ])('refuses a broker URL with %s (ValidationError naming agent.brokerUrl)', (_, brokerUrl) => {
    expect(() => agentStartupScript('aws', { ...BOOTSTRAP, brokerUrl })).toThrow(ValidationError);
    expect(() => agentStartupScript('aws', { ...BOOTSTRAP, brokerUrl })).toThrow(/^agent\.brokerUrl: /);
  });

  it.each([
    ['a newline', 'abc\ndef'],
    ['a carriage return', 'abc\rdef'],
    ['a space', 'abc def'],
    ['a NUL', 'abc\0def'],
    ['non-ASCII', 'jetón'],
    ['nothing', ''],
    ['too many characters', 'x'.repeat(MAX_JOIN_TOKEN_LENGTH + 1)],
  ])('refuses a join token with %s', (_, joinToken) => {
    expect(() => agentStartupScript('gcp', { ...BOOTSTRAP, joinToken })).toThrow(/^agent\.joinToken: /);
  });

  it.each(['latest', '^1.2.3', '1.2', '1.2.3 || 2', "1.2.3'; reboot; '", 'file:../gpubroker'])(
    'refuses the version %j (an exact npm version only)',
    (version) => {
      expect(() => agentStartupScript('azure', { ...BOOTSTRAP, version })).toThrow(/^agent\.version: /);
    },
  );

  it('refuses a vendor it does not know', () => {
    expect(() => agentStartupScript('oracle' as BootstrapVendor, BOOTSTRAP)).toThrow(/^vendor: /);
  });

  it("fits every cloud's limit with the longest URL and token it takes", () => {
    const longest = {
      brokerUrl: `https://${'b'.repeat(60)}.example.com/${'p'.repeat(MAX_BROKER_URL_LENGTH - 81)}`,
      joinToken: 't'.repeat(MAX_JOIN_TOKEN_LENGTH),
      version: '10.20.30-beta.1+build.5',
    };
    expect(longest.brokerUrl.length).toBeLessThanOrEqual(MAX_BROKER_URL_LENGTH);
    for (const vendor of VENDORS) {
      const script = agentStartupScript(vendor, longest);
      const raw = Buffer.byteLength(script);
      const base64 = Buffer.from(script).toString('base64');
      // AWS: 16 KB of user data before base64.
      expect(raw).toBeLessThanOrEqual(16_384);
      // GCE: 256 KB per metadata value.
      expect(raw).toBeLessThanOrEqual(262_144);
      // Azure: customData is base64 decoding to at most 65,535 bytes; the base64 text itself stays under 64 KB.
      expect(Buffer.from(base64, 'base64').length).toBeLessThanOrEqual(65_535);
      expect(base64.length).toBeLessThanOrEqual(65_536);
      expect(raw).toBeLessThanOrEqual(STARTUP_SCRIPT_LIMITS[vendor]);
    }
    expect(STARTUP_SCRIPT_LIMITS).toEqual({ aws: 16_384, gcp: 262_144, azure: 65_535 });
  });

  it.skipIf(!hasCommand('shellcheck'))('passes shellcheck (warnings and errors)', () => {
    for (const vendor of VENDORS)
      execFileSync('shellcheck', ['--shell=bash', '--severity=warning', '-'], {
        input: agentStartupScript(vendor, BOOTSTRAP),
      });
  });
});

// ---- the script, run --------------------------------------------------------------------------------------------

const canRun = ['bash', 'tar', 'gzip', 'sha256sum', 'mktemp', 'grep'].every(hasCommand);
const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const NODE_TARBALL = 'node-v20.99.0-linux-x64.tar.gz';

interface Sandbox {
  readonly dir: string;
  readonly root: string;
  /** Runs the script; returns its exit status and output. */
  run(script: string): { status: number | null; output: string };
  /** Command lines the stand-ins saw, one per line: `curl …`, `npm …`, `systemctl …`, `uname …`. */
  calls(): string[];
  at(path: string): string;
}

const METADATA_RULE = 'OUTPUT -d 169.254.169.254 -m owner --uid-owner 200000-249999 -j REJECT';

/**
 * A scratch `/` and stand-ins on PATH: curl copies files from `dist/` (a Node.js tarball whose `bin/node` runs
 * this very Node, and whose `bin/npm` pretends to install gpubroker), systemctl and uname record and answer.
 */
function sandbox(options: { badChecksum?: boolean } = {}): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'gpubroker-bootstrap-'));
  scratch.push(dir);
  const root = join(dir, 'root');
  const bin = join(dir, 'bin');
  const dist = join(dir, 'dist');
  const calls = join(dir, 'calls.log');
  for (const d of [root, bin, dist, join(dir, 'tmp'), join(dir, 'cwd')]) mkdirSync(d, { recursive: true });
  writeFileSync(calls, '');
  const script = (name: string, body: string) => {
    writeFileSync(
      join(bin, name),
      `#!/bin/bash\nprintf '%s\\n' "${name} $*" >>${shellQuote(calls)}\n${body}\n`,
    );
    chmodSync(join(bin, name), 0o755);
  };
  script(
    'curl',
    `out=''; url=''
while [ $# -gt 0 ]; do case "$1" in -o) out="$2"; shift 2 ;; --proto|--retry) shift 2 ;; -*) shift ;; *) url="$1"; shift ;; esac; done
case "$url" in https://nodejs.org/dist/latest-v20.x/*) cp ${shellQuote(dist)}/"\${url##*/}" "$out" ;; *) exit 22 ;; esac`,
  );
  script('systemctl', 'exit 0');
  // The machine has bubblewrap (an image without it would install it with its package manager).
  script('bwrap', 'exit 0');
  // The firewall: `-C` finds the rule once `-I` added it.
  const rule = join(dir, 'iptables-rule');
  script(
    'iptables',
    `if [ "$1" = -C ]; then [ -e ${shellQuote(rule)} ]; exit $?; fi; touch ${shellQuote(rule)}`,
  );
  script('uname', 'if [ "$1" = -m ]; then echo x86_64; else echo Linux; fi');

  // The Node.js tarball: node-v20.99.0-linux-x64/bin/{node,npm}.
  const top = join(dir, 'pkg', 'node-v20.99.0-linux-x64');
  mkdirSync(join(top, 'bin'), { recursive: true });
  writeFileSync(join(top, 'bin', 'node'), `#!/bin/bash\nexec ${shellQuote(process.execPath)} "$@"\n`);
  writeFileSync(
    join(top, 'bin', 'npm'),
    `#!/bin/bash
printf '%s\\n' "npm $*" >>${shellQuote(calls)}
prefix=''; spec=''
while [ $# -gt 0 ]; do case "$1" in --prefix) prefix="$2"; shift 2 ;; -*) shift ;; *) spec="$1"; shift ;; esac; done
mkdir -p "$prefix/lib/node_modules/gpubroker" "$prefix/bin"
printf '{"name":"gpubroker","version":"%s"}' "\${spec#gpubroker@}" >"$prefix/lib/node_modules/gpubroker/package.json"
printf '#!/bin/sh\\n' >"$prefix/bin/gpubroker"`,
  );
  chmodSync(join(top, 'bin', 'node'), 0o755);
  chmodSync(join(top, 'bin', 'npm'), 0o755);
  execFileSync('tar', ['-czf', join(dist, NODE_TARBALL), '-C', join(dir, 'pkg'), 'node-v20.99.0-linux-x64']);
  const sum = options.badChecksum
    ? '0'.repeat(64)
    : createHash('sha256')
        .update(readFileSync(join(dist, NODE_TARBALL)))
        .digest('hex');
  writeFileSync(
    join(dist, 'SHASUMS256.txt'),
    [
      `${'a'.repeat(64)}  node-v20.99.0-darwin-arm64.tar.gz`,
      `${'b'.repeat(64)}  node-v20.99.0-linux-arm64.tar.gz`,
      `${sum}  ${NODE_TARBALL}`,
      `${'c'.repeat(64)}  node-v20.99.0-linux-x64.tar.xz`,
      '',
    ].join('\n'),
  );

  return {
    dir,
    root,
    run(text) {
      const result = spawnSync('bash', ['-c', text], {
        cwd: join(dir, 'cwd'),
        env: {
          PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
          HOME: dir,
          TMPDIR: join(dir, 'tmp'),
          GPUBROKER_BOOTSTRAP_ROOT: root,
        },
        encoding: 'utf8',
      });
      return { status: result.status, output: `${result.stdout}${result.stderr}` };
    },
    calls: () => readFileSync(calls, 'utf8').split('\n').filter(Boolean),
    at: (path) => join(root, path),
  };
}

describe.skipIf(!canRun)('the start-up script, run by bash on a scratch root', () => {
  it('installs Node and gpubroker, writes the token root-only, and starts the unit; a second run changes nothing', () => {
    const box = sandbox();
    const script = agentStartupScript('gcp', { ...BOOTSTRAP, joinToken: HOSTILE_TOKEN });
    const first = box.run(script);
    expect(first.output).not.toContain('failed at line');
    expect(first.status).toBe(0);

    const token = box.at(AGENT_PATHS.tokenFile);
    expect(readFileSync(token, 'utf8')).toBe(HOSTILE_TOKEN);
    expect(statSync(token).mode & 0o777).toBe(0o600);
    expect(statSync(box.at(AGENT_PATHS.configDir)).mode & 0o777).toBe(0o700);
    expect(statSync(box.at(AGENT_PATHS.stateDir)).isDirectory()).toBe(true);
    // Nothing in the hostile token ran.
    for (const n of [1, 2, 3]) {
      expect(existsSync(join(box.dir, 'cwd', `pwned-${n}`))).toBe(false);
      expect(existsSync(join(box.root, `pwned-${n}`))).toBe(false);
    }

    const unit = readFileSync(box.at(AGENT_PATHS.unitFile), 'utf8');
    expect(unit).toContain('Restart=always\n');
    expect(unit).toContain(
      'ExecStart=/opt/gpubroker/node/bin/gpubroker agent --broker https://broker.example.com:8443 --token-file /etc/gpubroker/join-token --instance-id-from gcp --state-dir /var/lib/gpubroker-agent\n',
    );
    expect(unit).toContain('WantedBy=multi-user.target\n');
    expect(existsSync(box.at('/opt/gpubroker/node/bin/gpubroker'))).toBe(true);

    const calls = box.calls();
    expect(calls.filter((c) => c.startsWith('curl '))).toEqual([
      expect.stringContaining('https://nodejs.org/dist/latest-v20.x/SHASUMS256.txt'),
      expect.stringContaining(`https://nodejs.org/dist/latest-v20.x/${NODE_TARBALL}`),
    ]);
    expect(calls.filter((c) => c.startsWith('npm '))).toEqual([
      `npm install --global --prefix ${box.at('/opt/gpubroker/node')} --no-fund --no-audit --no-update-notifier gpubroker@1.2.3`,
    ]);
    expect(calls.filter((c) => c.startsWith('systemctl '))).toEqual([
      'systemctl daemon-reload',
      'systemctl enable gpubroker-agent.service',
      'systemctl restart --no-block gpubroker-agent.service',
    ]);
    // No command line carried the token (what `ps` would have shown).
    for (const call of calls) expect(call).not.toContain('pwned');
    // Containers' users are kept off the metadata service, once.
    expect(calls.filter((c) => c.startsWith('iptables '))).toEqual([
      `iptables -C ${METADATA_RULE}`,
      `iptables -I ${METADATA_RULE}`,
    ]);

    // Again (a reboot on GCE), after the agent used and removed its token: nothing downloaded, installed or
    // restarted, and the spent token is not written back.
    rmSync(token);
    const second = box.run(script);
    expect(second.status).toBe(0);
    expect(existsSync(token)).toBe(false);
    const more = box.calls().slice(calls.length);
    expect(more).toEqual([
      `iptables -C ${METADATA_RULE}`,
      'systemctl enable gpubroker-agent.service',
      'systemctl start --no-block gpubroker-agent.service',
    ]);
  });

  it('installs another gpubroker version and restarts the agent when a script names one', () => {
    const box = sandbox();
    expect(box.run(agentStartupScript('aws', BOOTSTRAP)).status).toBe(0);
    const before = box.calls().length;
    expect(box.run(agentStartupScript('aws', { ...BOOTSTRAP, version: '1.2.4' })).status).toBe(0);
    expect(box.calls().slice(before)).toEqual([
      `npm install --global --prefix ${box.at('/opt/gpubroker/node')} --no-fund --no-audit --no-update-notifier gpubroker@1.2.4`,
      `iptables -C ${METADATA_RULE}`,
      'systemctl enable gpubroker-agent.service',
      'systemctl restart --no-block gpubroker-agent.service',
    ]);
  });

  it('stops, starting nothing, when the Node.js tarball does not match its SHA-256 sum', () => {
    const box = sandbox({ badChecksum: true });
    const result = box.run(agentStartupScript('azure', BOOTSTRAP));
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/gpubroker-bootstrap: failed at line \d+/);
    expect(existsSync(box.at('/opt/gpubroker/node/bin/node'))).toBe(false);
    expect(box.calls().filter((c) => c.startsWith('npm ') || c.startsWith('systemctl '))).toEqual([]);
  });
});
