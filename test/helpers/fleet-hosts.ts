// Many real OpenSSH sshd "hosts" on loopback for fleet-scale tests and benchmarks: one sshd
// per host on a port of its own, all sharing one host key and one client key (generated once,
// so starting 200 hosts costs 200 process starts, not 400 key generations). Each host can be
// made to misbehave the way real devices do:
//
//   down          nothing listens on its port (the connection is refused)
//   refuses-auth  sshd runs, but our key is not in its authorized_keys
//   probe-fails   sshd runs a ForceCommand gate, the way locked-down hosts restrict what a
//                 key may run: ordinary commands pass, a script fed to `sh -s` (the probe) is
//                 refused with exit 126
//   slowMs        the gate stalls every command this long (a slow or overloaded device)
//   balenaOS      the gate runs every command in a private mount namespace where
//                 /etc/os-release says balenaOS: the probe finds a host that is already
//                 migrated, so `check` ends `ready` and `run` ends `migrated`
//
// Also here: the inventories (ours, Ansible INI and YAML), a known_hosts for the fleet, a
// minimal image and config.json for `check`, and a way to run the real CLI as a subprocess.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { answersWithBanner } from './sshd.ts';

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(REPO_ROOT, 'bin/balena-migrate.js');

export type HostKind = 'ok' | 'down' | 'refuses-auth' | 'probe-fails';

export interface FleetHostSpec {
  name: string;
  kind?: HostKind;
  /** every command on this host waits this long before it runs */
  slowMs?: number;
  /** the host looks like balenaOS to every command (os-release, in a private mount namespace) */
  balenaOS?: boolean;
  /** extra sshd_config lines for this host only (they win over the shared ones) */
  extraConfig?: string[];
}

export interface FleetHost {
  name: string;
  kind: HostKind;
  address: '127.0.0.1';
  port: number;
  /** sshd's own log (LogLevel VERBOSE); absent for a host that is down */
  logFile: string | null;
  /** the listening sshd's pid (its per-connection children are reaped by it); null when down */
  pid: number | null;
}

export interface FleetHosts {
  /** temporary directory with the keys, configs and logs; removed by stop() */
  dir: string;
  hosts: FleetHost[];
  host(name: string): FleetHost;
  /** the client key every healthy host accepts (for root) */
  clientKeyPath: string;
  /** `ssh-ed25519 AAAA...` of the host key all hosts share */
  hostKeyPub: string;
  /** a known_hosts file with one plain line per host, down hosts included */
  knownHostsFile: string;
  /** a minimal balenaOS-shaped image (1 MiB with an MBR signature) and a config.json */
  image: string;
  configJson: string;
  stop(): Promise<void>;
}

export interface FleetOptions {
  /** sshd LogLevel; VERBOSE by default (what a test may want to read), ERROR for benchmarks */
  logLevel?: 'QUIET' | 'ERROR' | 'INFO' | 'VERBOSE' | 'DEBUG';
  /**
   * `clean` (default): sessions get HOME set to an empty directory (sshd SetEnv), as on a
   * fresh device. Debian's bash sources ~/.bashrc for every command sshd runs, and root's
   * ~/.bashrc on a developer machine (pyenv, cargo...) can cost ~0.1 s of CPU per command:
   * a cost of this machine, not of any SSH client. `machine`: root's real home.
   */
  home?: 'clean' | 'machine';
}

/** Hosts named `prefix-001`... of the given kinds, in order: e.g. fleetSpecs('h', 20, { 3: 'down' }). */
export function fleetSpecs(
  prefix: string,
  count: number,
  kinds: Record<number, HostKind> = {},
): FleetHostSpec[] {
  const width = Math.max(2, String(count).length);
  return Array.from({ length: count }, (_, i) => ({
    name: `${prefix}-${String(i + 1).padStart(width, '0')}`,
    kind: kinds[i + 1] ?? 'ok',
  }));
}

// The gate a host with a knob runs as its ForceCommand. $1: seconds to stall, $2: "refuse-probe"
// to refuse scripts fed on stdin, $3: an os-release file to show instead of this machine's, or
// "-". The original command runs through sh -c, as sshd would run it, with stdin passed on.
const GATE_SCRIPT = `#!/bin/sh
[ "$1" = 0 ] || sleep "$1"
case "$2:$SSH_ORIGINAL_COMMAND" in
refuse-probe:"sh -s"*)
  echo "gate: this key may not run scripts fed on stdin (locked-down host)" >&2
  exit 126
  ;;
esac
if [ "$3" != - ]; then
  exec unshare --mount --propagation private /bin/sh -c \\
    'mount --bind "$1" /etc/os-release && exec /bin/sh -c "$2"' sh "$3" "$SSH_ORIGINAL_COMMAND"
fi
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
`;

const BALENA_OS_RELEASE = [
  'ID="balena-os"',
  'NAME="balenaOS"',
  'VERSION="5.3.21"',
  'VERSION_ID="5.3.21"',
  'PRETTY_NAME="balenaOS 5.3.21"',
  'MACHINE="genericx86-64-ext"',
  '',
].join('\n');

/** Start every host; resolves once every sshd answers with its banner. */
export async function startFleetHosts(specs: FleetHostSpec[], opts: FleetOptions = {}): Promise<FleetHosts> {
  const names = new Set(specs.map((s) => s.name));
  if (names.size !== specs.length) throw new Error('fleet host names must be unique');
  const dir = await mkdtemp(join(tmpdir(), 'bm-fleet-'));
  await chmod(dir, 0o755);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  mkdirSync(join(dir, 'hosts'));

  const hostKey = join(dir, 'host_key');
  const clientKey = join(dir, 'client_key');
  const strangerKey = join(dir, 'stranger_key');
  await Promise.all([keygen(hostKey, 'host'), keygen(clientKey, 'client'), keygen(strangerKey, 'stranger')]);
  const hostKeyPub = pubOf(readFileSync(`${hostKey}.pub`, 'utf8'));
  const authorized = join(dir, 'authorized_keys');
  const strangers = join(dir, 'authorized_keys_stranger');
  await writeFile(authorized, readFileSync(`${clientKey}.pub`, 'utf8'), { mode: 0o644 });
  await writeFile(strangers, readFileSync(`${strangerKey}.pub`, 'utf8'), { mode: 0o644 });
  const home = join(dir, 'home');
  mkdirSync(home, { mode: 0o700 });
  const gate = join(dir, 'gate.sh');
  await writeFile(gate, GATE_SCRIPT, { mode: 0o755 });
  const balenaOsRelease = join(dir, 'balena-os-release');
  await writeFile(balenaOsRelease, BALENA_OS_RELEASE, { mode: 0o644 });

  const image = join(dir, 'balena.img');
  const disk = Buffer.alloc(1024 * 1024);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  await writeFile(image, disk);
  const configJson = join(dir, 'config.json');
  await writeFile(configJson, '{"applicationId":1,"deviceType":"genericx86-64-ext"}\n', { mode: 0o600 });

  const ports = await reservePorts(specs.length);
  const children: ChildProcess[] = [];
  const hosts: FleetHost[] = [];
  const stopAll = async () => {
    await Promise.all(children.map((c) => killAndWait(c)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const started = await Promise.all(
      specs.map(async (spec, i) => {
        const kind = spec.kind ?? 'ok';
        const hostDir = join(dir, 'hosts', spec.name);
        mkdirSync(hostDir);
        if (kind === 'down') {
          return {
            name: spec.name,
            kind,
            address: '127.0.0.1' as const,
            port: ports[i]!,
            logFile: null,
            pid: null,
          };
        }
        const gated = kind === 'probe-fails' || (spec.slowMs ?? 0) > 0 || spec.balenaOS === true;
        const config = [
          ...(spec.extraConfig ?? []),
          'ListenAddress 127.0.0.1',
          `HostKey ${hostKey}`,
          `PidFile ${join(hostDir, 'sshd.pid')}`,
          `AuthorizedKeysFile ${kind === 'refuses-auth' ? strangers : authorized}`,
          'UsePAM no',
          'StrictModes no',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'PermitRootLogin prohibit-password',
          'Subsystem sftp internal-sftp',
          `LogLevel ${opts.logLevel ?? 'VERBOSE'}`,
          ...((opts.home ?? 'clean') === 'clean' ? [`SetEnv HOME=${home}`] : []),
          ...(gated
            ? [
                `ForceCommand ${gate} ${((spec.slowMs ?? 0) / 1000).toFixed(3)} ` +
                  `${kind === 'probe-fails' ? 'refuse-probe' : 'pass'} ${spec.balenaOS ? balenaOsRelease : '-'}`,
              ]
            : []),
        ];
        const configFile = join(hostDir, 'sshd_config');
        await writeFile(configFile, `${config.join('\n')}\n`);
        const logFile = join(hostDir, 'sshd.log');
        const { port, pid } = await launchSshd(configFile, ports[i]!, logFile, children);
        return { name: spec.name, kind, address: '127.0.0.1' as const, port, logFile, pid };
      }),
    );
    hosts.push(...started);
  } catch (err) {
    await stopAll();
    throw err;
  }

  const knownHostsFile = join(dir, 'known_hosts');
  await writeFile(knownHostsFile, hosts.map((h) => `[127.0.0.1]:${h.port} ${hostKeyPub}\n`).join(''));
  const byName = new Map(hosts.map((h) => [h.name, h]));
  let stopped: Promise<void> | undefined;
  return {
    dir,
    hosts,
    host: (name) => {
      const h = byName.get(name);
      if (!h) throw new Error(`no fleet host ${name}`);
      return h;
    },
    clientKeyPath: clientKey,
    hostKeyPub,
    knownHostsFile,
    image,
    configJson,
    stop: () => {
      stopped ??= stopAll();
      return stopped;
    },
  };
}

async function keygen(path: string, comment: string): Promise<void> {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

function pubOf(line: string): string {
  const [type = '', b64 = ''] = line.trim().split(/\s+/);
  return `${type} ${b64}`;
}

/**
 * Distinct ports nobody listens on: all held open at once (so the kernel hands out different
 * ones), then released for sshd to take. A port stolen in between is replaced by launchSshd.
 */
async function reservePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const srv = createServer();
      servers.push(srv);
      ports.push(
        await new Promise<number>((ok, fail) => {
          srv.once('error', fail);
          srv.listen(0, '127.0.0.1', () => {
            const a = srv.address();
            if (a && typeof a === 'object') ok(a.port);
            else fail(new Error('no port'));
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** Start one sshd -D; if its port was taken meanwhile, try another. Returns the port it listens on. */
async function launchSshd(configFile: string, port: number, logFile: string, children: ChildProcess[]) {
  let tryPort = port;
  for (let attempt = 0; ; attempt++) {
    // setpriv --pdeathsig: the sshd dies with the process that started it, even on a crash.
    const child = spawn(
      'setpriv',
      ['--pdeathsig', 'SIGTERM', '--', SSHD, '-D', '-f', configFile, '-p', String(tryPort), '-E', logFile],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    children.push(child);
    let stderr = '';
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    const ready = await waitForBanner(tryPort, child, 15_000);
    if (ready) return { port: tryPort, pid: child.pid! };
    await killAndWait(child);
    if (attempt >= 3) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      throw new Error(`sshd did not start on port ${tryPort}: ${stderr}${log}`);
    }
    [tryPort] = (await reservePorts(1)) as [number];
  }
}

async function waitForBanner(port: number, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    if (await answersWithBanner(port)) return true;
    await new Promise((r) => setTimeout(r, 30));
  }
  return false;
}

function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    child.kill('SIGTERM');
  });
}

// ---- inventories -------------------------------------------------------------------------------

export interface InventoryGroups {
  [group: string]: string[];
}

/** Our inventory format: every host with its port, root, the fleet's client key; optional groups. */
export function nativeInventory(
  fleet: FleetHosts,
  groups: InventoryGroups = {},
  hosts = fleet.hosts,
): string {
  const lines = ['defaults:', '  user: root', `  identityFile: ${fleet.clientKeyPath}`, 'hosts:'];
  for (const h of hosts) lines.push(`  ${h.name}: { address: ${h.address}, port: ${h.port} }`);
  if (Object.keys(groups).length) {
    lines.push('groups:');
    for (const [g, members] of Object.entries(groups))
      lines.push(`  ${g}:`, `    hosts: [${members.join(', ')}]`);
  }
  return `${lines.join('\n')}\n`;
}

/** The same fleet as an Ansible INI inventory. */
export function ansibleIniInventory(
  fleet: FleetHosts,
  groups: InventoryGroups = {},
  hosts = fleet.hosts,
): string {
  const lines = hosts.map((h) => `${h.name} ansible_host=${h.address} ansible_port=${h.port}`);
  lines.push('', '[all:vars]', 'ansible_user=root', `ansible_ssh_private_key_file=${fleet.clientKeyPath}`);
  for (const [g, members] of Object.entries(groups)) lines.push('', `[${g}]`, ...members);
  return `${lines.join('\n')}\n`;
}

/** The same fleet as an Ansible YAML inventory. */
export function ansibleYamlInventory(
  fleet: FleetHosts,
  groups: InventoryGroups = {},
  hosts = fleet.hosts,
): string {
  const lines = [
    'all:',
    '  vars:',
    '    ansible_user: root',
    `    ansible_ssh_private_key_file: ${fleet.clientKeyPath}`,
    '  hosts:',
  ];
  for (const h of hosts)
    lines.push(`    ${h.name}:`, `      ansible_host: ${h.address}`, `      ansible_port: ${h.port}`);
  if (Object.keys(groups).length) {
    lines.push('  children:');
    for (const [g, members] of Object.entries(groups)) {
      lines.push(`    ${g}:`, '      hosts:', ...members.map((m) => `        ${m}:`));
    }
  }
  return `${lines.join('\n')}\n`;
}

// ---- the CLI as a subprocess -------------------------------------------------------------------

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** the run directory this invocation wrote, when it wrote one */
  runDir: string | null;
}

export interface CliRun {
  child: ChildProcess;
  done: Promise<CliResult>;
}

/** Start `node bin/balena-migrate.js ARGS` with no agent and no TTY; `runsDir` is where its run goes. */
export function startCli(args: string[], runsDir: string, env: NodeJS.ProcessEnv = {}): CliRun {
  const before = new Set(existsSync(runsDir) ? readdirSync(runsDir) : []);
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.SSH_AUTH_SOCK;
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<CliResult>((ok) =>
    child.on('close', (code, signal) => {
      const fresh = existsSync(runsDir) ? readdirSync(runsDir).filter((d) => !before.has(d)) : [];
      ok({
        code,
        signal,
        stdout,
        stderr,
        runDir: fresh.length === 1 ? join(runsDir, fresh[0]!) : null,
      });
    }),
  );
  return { child, done };
}

/** Run the CLI to the end. */
export function runCli(args: string[], runsDir: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return startCli(args, runsDir, env).done;
}

/** The flags every fleet test passes to `check`/`run`: the fleet's image, config, keys and known_hosts. */
export function fleetFlags(fleet: FleetHosts, runsDir: string): string[] {
  return [
    '--image',
    fleet.image,
    '--config-json',
    fleet.configJson,
    '--known-hosts',
    fleet.knownHostsFile,
    '--identity',
    fleet.clientKeyPath,
    '--no-agent',
    '--runs-dir',
    runsDir,
    '--connect-timeout',
    '10',
  ];
}

/** One line per JSON object; a torn last line is skipped. */
export function readJsonLines<T = Record<string, unknown>>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return line ? [JSON.parse(line) as T] : [];
      } catch {
        return [];
      }
    });
}

/** The per-host report.json files of a run, by host name. */
export function readHostReports(runDir: string): Map<string, Record<string, unknown> & { outcome: string }> {
  const out = new Map<string, Record<string, unknown> & { outcome: string }>();
  const dir = join(runDir, 'hosts');
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const file = join(dir, name, 'report.json');
    if (existsSync(file)) out.set(name, JSON.parse(readFileSync(file, 'utf8')));
  }
  return out;
}

/** failed-hosts.txt of a run as a list of names. */
export function readFailedHosts(runDir: string): string[] {
  const file = join(runDir, 'failed-hosts.txt');
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}
