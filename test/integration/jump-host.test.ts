// A jump host through a real sshd, with a target the orchestrator cannot reach any other way:
// the target's sshd runs in a network namespace of its own (127.0.0.2:2222 there, nothing at
// that address out here). The jump host is an sshd started per connection in inetd mode
// (`sshd -i`, the way Debian's ssh.socket runs it) inside that namespace, on a socket that
// listens out here. So a target that answers proves the hop was used; each hop's host key is
// checked against known_hosts on its own.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHostReports, runCli } from '../helpers/fleet-hosts.ts';
import { answersWithBanner, generateKey } from '../helpers/sshd.ts';

const TARGET_ADDRESS = '127.0.0.2';
const TARGET_PORT = 2222;

let dir: string;
let target: ChildProcess;
let jumpServer: Server;
let jumpPort: number;
const jumpSessions = new Set<ChildProcess>();
let hostKeyPub: string;
let clientKey: string;
let image: string;
let configJson: string;

function sshdConfig(name: string, extra: string[]): string {
  const file = join(dir, `${name}_config`);
  writeFileSync(
    file,
    [
      ...extra,
      `HostKey ${join(dir, `${name}_host_key`)}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, `${name}.pid`)}`,
      'UsePAM no',
      'StrictModes no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      // sessions as on a fresh device (see fleet-hosts.ts: root's ~/.bashrc here is slow)
      `SetEnv HOME=${join(dir, 'home')}`,
      'LogLevel DEBUG1',
      '',
    ].join('\n'),
  );
  return file;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bm-jump-'));
  mkdirSync(join(dir, 'home'));
  mkdirSync('/run/sshd', { recursive: true });
  const [targetKey, jumpKey, client] = await Promise.all([
    generateKey(join(dir, 'target_host_key'), { comment: 'target' }),
    generateKey(join(dir, 'jump_host_key'), { comment: 'jump' }),
    generateKey(join(dir, 'client_key'), { comment: 'client' }),
  ]);
  hostKeyPub = JSON.stringify({ target: targetKey.pub, jump: jumpKey.pub });
  clientKey = client.path;
  writeFileSync(join(dir, 'authorized_keys'), `${client.pub}\n`);
  image = join(dir, 'balena.img');
  const disk = Buffer.alloc(1024 * 1024);
  disk.writeUInt16LE(0xaa55, 510);
  writeFileSync(image, disk);
  configJson = join(dir, 'config.json');
  writeFileSync(configJson, '{"applicationId":1}\n');

  // The target: sshd in a network namespace of its own.
  const targetConfig = sshdConfig('target', [`ListenAddress ${TARGET_ADDRESS}:${TARGET_PORT}`]);
  target = spawn(
    'unshare',
    [
      '--net',
      '--',
      'sh',
      '-c',
      'ip link set lo up && exec setpriv --pdeathsig SIGTERM /usr/sbin/sshd -D -f "$1" -E "$2"',
      'sh',
      targetConfig,
      join(dir, 'target.log'),
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const targetLog = join(dir, 'target.log');
  const deadline = Date.now() + 10_000;
  while (!readFileSafe(targetLog).includes('Server listening')) {
    if (Date.now() > deadline) throw new Error(`target sshd did not start: ${readFileSafe(targetLog)}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  // The jump host: out here a TCP port; behind it, sshd -i in the target's namespace.
  const jumpConfig = sshdConfig('jump', []);
  jumpServer = createServer({ pauseOnConnect: true }, (socket) => {
    const session = spawn(
      'nsenter',
      [
        `--net=/proc/${target.pid}/ns/net`,
        '/usr/sbin/sshd',
        '-i',
        '-f',
        jumpConfig,
        '-E',
        join(dir, 'jump.log'),
      ],
      { stdio: [socket, socket, 'ignore'] },
    );
    jumpSessions.add(session);
    session.on('exit', () => jumpSessions.delete(session));
    // sshd holds its own copy of the socket now.
    socket.destroy();
  });
  await new Promise<void>((resolve) => jumpServer.listen(0, '127.0.0.1', resolve));
  jumpPort = (jumpServer.address() as { port: number }).port;
  expect(await answersWithBanner(jumpPort)).toBe(true);
});

afterAll(async () => {
  await new Promise((r) => jumpServer?.close(r));
  for (const s of jumpSessions) s.kill('SIGKILL');
  if (target && target.exitCode === null) {
    const exited = new Promise((r) => target.once('exit', r));
    target.kill('SIGTERM');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function knownHosts(name: string, entries: { jump?: boolean; target?: boolean }): string {
  const keys = JSON.parse(hostKeyPub) as { target: string; jump: string };
  const strip = (pub: string) => pub.split(' ').slice(0, 2).join(' ');
  const lines = [
    ...(entries.jump ? [`[127.0.0.1]:${jumpPort} ${strip(keys.jump)}`] : []),
    ...(entries.target ? [`[${TARGET_ADDRESS}]:${TARGET_PORT} ${strip(keys.target)}`] : []),
  ];
  const file = join(dir, name);
  writeFileSync(file, lines.map((l) => `${l}\n`).join(''));
  return file;
}

function inventory(withJump: boolean): string {
  const file = join(dir, withJump ? 'inventory.yml' : 'inventory-direct.yml');
  writeFileSync(
    file,
    [
      'defaults: { user: root }',
      ...(withJump ? ['jumpHosts:', `  bastion: { address: 127.0.0.1, port: ${jumpPort} }`] : []),
      'hosts:',
      `  device: { address: ${TARGET_ADDRESS}, port: ${TARGET_PORT}${withJump ? ', jump: bastion' : ''} }`,
      '',
    ].join('\n'),
  );
  return file;
}

function check(inventoryFile: string, knownHostsFile: string, ...extra: string[]) {
  const runsDir = join(dir, 'runs');
  return runCli(
    [
      'check',
      '-i',
      inventoryFile,
      '--image',
      image,
      '--config-json',
      configJson,
      '--identity',
      clientKey,
      '--no-agent',
      '--known-hosts',
      knownHostsFile,
      '--runs-dir',
      runsDir,
      '--connect-timeout',
      '5',
      ...extra,
    ],
    runsDir,
  );
}

const targetLogins = () =>
  (readFileSafe(join(dir, 'target.log')).match(/Accepted publickey for root/g) ?? []).length;

describe('a jump host through a real sshd', () => {
  it('cannot reach the target without the jump host', async () => {
    const r = await check(inventory(false), knownHosts('kh-direct', { jump: true, target: true }));
    expect(r.code, r.stderr).toBe(1);
    expect(readHostReports(r.runDir!).get('device')).toMatchObject({ outcome: 'unreachable' });
  });

  it('reaches, probes and plans the target through the jump host', async () => {
    const before = targetLogins();
    const r = await check(inventory(true), knownHosts('kh-both', { jump: true, target: true }));
    expect(r.code, r.stderr).toBe(1);
    const report = readHostReports(r.runDir!).get('device')!;
    // refused: the target is this machine, without GRUB; connect and probe went through
    expect(report.outcome).toBe('refused');
    expect(report).toMatchObject({ address: TARGET_ADDRESS, port: TARGET_PORT });
    expect(targetLogins()).toBeGreaterThan(before);
    // The jump host's sshd opened the tunnel to the target for us.
    expect(readFileSafe(join(dir, 'jump.log'))).toContain(
      `server_request_direct_tcpip: originator 127.0.0.1 port 0, target ${TARGET_ADDRESS} port ${TARGET_PORT}`,
    );
  });

  it('refuses an unknown jump host key and never reaches the target', async () => {
    const before = targetLogins();
    const r = await check(inventory(true), knownHosts('kh-no-jump', { target: true }));
    expect(r.code, r.stderr).toBe(1);
    const report = readHostReports(r.runDir!).get('device')!;
    expect(report.outcome).toBe('unreachable');
    expect(report.error).toMatchObject({ class: 'HostKeyError' });
    expect((report.error as { message: string }).message).toContain(`127.0.0.1:${jumpPort}`);
    expect(targetLogins()).toBe(before);
  });

  it('refuses an unknown target key behind a known jump host', async () => {
    const r = await check(inventory(true), knownHosts('kh-no-target', { jump: true }));
    expect(r.code, r.stderr).toBe(1);
    const report = readHostReports(r.runDir!).get('device')!;
    expect(report.error).toMatchObject({ class: 'HostKeyError' });
    expect((report.error as { message: string }).message).toContain(`${TARGET_ADDRESS}:${TARGET_PORT}`);
  });

  it('records both keys on first use with --accept-new-host-keys, then verifies them from the file', async () => {
    const kh = knownHosts('kh-empty', {});
    const first = await check(inventory(true), kh, '--accept-new-host-keys');
    expect(readHostReports(first.runDir!).get('device')?.outcome).toBe('refused');
    expect(readFileSync(kh, 'utf8').trim().split('\n')).toHaveLength(2);
    const again = await check(inventory(true), kh);
    expect(readHostReports(again.runDir!).get('device')?.outcome).toBe('refused');
  });

  it('goes through the same jump host given as Ansible ProxyJump', async () => {
    const ini = join(dir, 'inventory.ini');
    writeFileSync(
      ini,
      `device ansible_host=${TARGET_ADDRESS} ansible_port=${TARGET_PORT} ansible_user=root ` +
        `ansible_ssh_common_args='-o ProxyJump=root@127.0.0.1:${jumpPort}'\n`,
    );
    const r = await check(ini, knownHosts('kh-ansible', { jump: true, target: true }));
    expect(readHostReports(r.runDir!).get('device')?.outcome).toBe('refused');
  });
});
