// QEMU (TCG) virtual machines for the end-to-end tests: one process per VM, a copy-on-write
// overlay over a cached base disk, serial console in a file, SSH and other ports forwarded
// to free loopback ports. Guest reboots keep the VM running (no -no-reboot), unless
// `coldReboot`: then a reboot ends QEMU and the VM starts again in a new QEMU process.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { copyFile, mkdtemp, open } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { run } from './run.ts';

export interface VmForward {
  guestPort: number;
}

export interface StartVmOptions {
  /** Short name, used for the work directory and the QEMU process title. */
  name: string;
  /** Disk to boot. The VM writes to a qcow2 overlay over it, never to the disk itself. */
  disk: string;
  memMiB?: number;
  cpus?: number;
  /** Guest TCP ports reachable on 127.0.0.1:vm.hostPort(guestPort). */
  forwards?: VmForward[];
  /** More virtio disks (vdb, vdc, ...), attached as they are: the VM writes to them. */
  extraDisks?: string[];
  /** Boot and write `disk` itself instead of an overlay (image builders only). */
  writeDisk?: boolean;
  /** Direct kernel boot instead of the disk's boot loader. */
  kernel?: { kernel: string; initrd?: string; append: string };
  /**
   * UEFI firmware (OVMF) instead of SeaBIOS: `code` is mapped read-only, `vars` is copied into
   * the work dir (`vm.varsPath`), where the guest's EFI variables persist across its reboots.
   * `secureBoot`: a q35 machine with SMM, which OVMF's secure-boot builds need.
   */
  uefi?: { code: string; vars: string; secureBoot?: boolean };
  /**
   * A guest reboot starts a new QEMU (same disk, variable store, ports; the serial log goes on)
   * instead of resetting this one. Under TCG a warm reset is slow: the firmware and the next
   * kernel unpack themselves over memory the old translated code still covers, which costs
   * OVMF minutes; a fresh process does it in seconds. A guest poweroff (Linux's
   * "reboot: Power down" on the serial console) ends the VM as usual.
   */
  coldReboot?: boolean;
}

export interface Vm {
  name: string;
  pid: number;
  /** Directory holding the overlay, serial log and QEMU's stderr; removed when the process exits. */
  workDir: string;
  serialLogPath: string;
  /** The disk the guest writes (the overlay, or `disk` with writeDisk). */
  overlayPath: string;
  /** The writable copy of the UEFI variable store (with `uefi`), else null. */
  varsPath: string | null;
  hostPort(guestPort: number): number;
  /** Resolves with the first line once a TCP server in the guest greets (default: an SSH banner). */
  waitForTcpBanner(guestPort: number, timeoutMs: number, prefix?: string): Promise<string>;
  /** Current size of the serial log, to wait for output that comes after this point. */
  serialOffset(): number;
  /** Resolves when the serial log (from `fromOffset`) contains `pattern`. */
  waitForSerial(pattern: string | RegExp, timeoutMs: number, fromOffset?: number): Promise<void>;
  /** The last lines of the serial log, for failure messages. */
  serialTail(lines?: number): string;
  /** Kills QEMU (SIGTERM, then SIGKILL) and waits for it. Files stay until the process exits. */
  stop(): Promise<void>;
  /** Resolves with QEMU's exit code once it has exited (e.g. after a guest poweroff). */
  waitForExit(timeoutMs: number): Promise<number | null>;
  readonly exited: boolean;
}

const liveQemus = new Set<ChildProcess>();
const workDirs = new Set<string>();
let exitHookInstalled = false;

// Kills every QEMU and removes work dirs when the test process exits, however it exits
// normally. A detached watchdog per VM covers the process being killed outright.
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveQemus) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    if (process.env.BALENA_MIGRATE_KEEP_VMS) return;
    for (const dir of workDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** The format QEMU detects for an image ("raw", "qcow2"). */
export async function imageFormat(path: string): Promise<string> {
  const { stdout } = await run('qemu-img', ['info', '-U', '--output=json', path]);
  return (JSON.parse(stdout) as { format: string }).format;
}

/** Creates a qcow2 copy-on-write overlay at `overlay` over `base` (which is only read). */
export async function createOverlay(base: string, overlay: string): Promise<string> {
  const format = await imageFormat(base);
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', format, '-b', resolve(base), overlay]);
  return overlay;
}

/**
 * Writes a raw image over the start of a disk (qcow2 or raw) the way `dd` onto a block device
 * would: the image's bytes replace the disk's first bytes, the rest of the disk is kept.
 */
export async function writeImageOverDisk(rawImage: string, disk: string): Promise<void> {
  const format = await imageFormat(disk);
  await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', format, rawImage, disk]);
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolvePort(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

// QEMU option values use ',' as separator; a literal comma is doubled.
function qemuValue(value: string): string {
  return value.replace(/,/g, ',,');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Resolves with the promise's value, or 'timeout' after ms; the timer never outlives the race.
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Boots a VM under QEMU TCG. Kill it with `stop()`; it is killed anyway when the process exits. */
export async function startVm(opts: StartVmOptions): Promise<Vm> {
  installExitHook();
  const safeName = opts.name.replace(/[^A-Za-z0-9_.-]/g, '_');
  const workDir = await mkdtemp(join(tmpdir(), `balena-migrate-vm-${safeName}-`));
  workDirs.add(workDir);
  const serialLogPath = join(workDir, 'serial.log');
  const disk = resolve(opts.disk);
  let overlayPath = disk;
  let overlayFormat = await imageFormat(disk);
  if (!opts.writeDisk) {
    overlayPath = await createOverlay(disk, join(workDir, 'disk.qcow2'));
    overlayFormat = 'qcow2';
  }
  let varsPath: string | null = null;
  if (opts.uefi) {
    varsPath = join(workDir, 'OVMF_VARS.fd');
    await copyFile(opts.uefi.vars, varsPath);
  }
  const extra = [];
  for (const path of opts.extraDisks ?? [])
    extra.push({ path: resolve(path), format: await imageFormat(path) });

  for (let attempt = 1; ; attempt++) {
    const ports = new Map<number, number>();
    for (const { guestPort } of opts.forwards ?? []) ports.set(guestPort, await freePort());
    const args = qemuArgs(opts, { serialLogPath, overlayPath, overlayFormat, extra, ports, varsPath });
    const started = await launch(opts.name, args, workDir, [...ports.values()]);
    if ('vm' in started) {
      // the same QEMU command line again after a guest reboot: ports, disk and vars stay
      const relaunch = opts.coldReboot
        ? async () => {
            const again = await launch(opts.name, args, workDir, [...ports.values()]);
            return 'vm' in again ? again.vm : null;
          }
        : null;
      return makeVm(opts.name, started.vm, workDir, serialLogPath, overlayPath, ports, varsPath, relaunch);
    }
    // Another process may have taken a port between freePort() and QEMU binding it.
    if (/host ?forward/i.test(started.stderr) && attempt < 5) continue;
    throw new Error(`QEMU for VM ${opts.name} failed to start:\n${started.stderr.trim()}`);
  }
}

interface QemuLayout {
  serialLogPath: string;
  overlayPath: string;
  overlayFormat: string;
  extra: { path: string; format: string }[];
  ports: Map<number, number>;
  varsPath: string | null;
}

function qemuArgs(opts: StartVmOptions, layout: QemuLayout): string[] {
  const forwards = [...layout.ports]
    .map(([guest, host]) => `,hostfwd=tcp:127.0.0.1:${host}-:${guest}`)
    .join('');
  const args = [
    '-name',
    qemuValue(opts.name),
    '-accel',
    'tcg',
    '-machine',
    opts.uefi?.secureBoot ? 'q35,smm=on' : 'pc',
    '-m',
    String(opts.memMiB ?? 1024),
    '-smp',
    String(opts.cpus ?? 1),
    '-display',
    'none',
    '-monitor',
    'none',
    ...(opts.coldReboot
      ? [
          '-no-reboot',
          '-chardev',
          `file,id=serial0,append=on,path=${qemuValue(layout.serialLogPath)}`,
          '-serial',
          'chardev:serial0',
        ]
      : ['-serial', `file:${layout.serialLogPath}`]),
    '-nic',
    `user,model=virtio-net-pci${forwards}`,
    '-drive',
    `file=${qemuValue(layout.overlayPath)},format=${layout.overlayFormat},if=virtio,cache=${opts.writeDisk ? 'writeback' : 'unsafe'}`,
  ];
  for (const disk of layout.extra) {
    args.push('-drive', `file=${qemuValue(disk.path)},format=${disk.format},if=virtio,cache=writeback`);
  }
  if (opts.uefi && layout.varsPath) {
    if (opts.uefi.secureBoot) args.push('-global', 'driver=cfi.pflash01,property=secure,value=on');
    args.push(
      '-drive',
      `if=pflash,format=raw,unit=0,readonly=on,file=${qemuValue(resolve(opts.uefi.code))}`,
      '-drive',
      `if=pflash,format=raw,unit=1,file=${qemuValue(layout.varsPath)}`,
    );
  }
  if (opts.kernel) {
    args.push('-kernel', opts.kernel.kernel, '-append', opts.kernel.append);
    if (opts.kernel.initrd) args.push('-initrd', opts.kernel.initrd);
  }
  return args;
}

interface Launched {
  child: ChildProcess;
  exit: Promise<number | null>;
  stderr: () => string;
}

// Starts QEMU and waits until it is running (its forwarded ports accept) or has failed.
async function launch(
  name: string,
  args: string[],
  workDir: string,
  hostPorts: number[],
): Promise<{ vm: Launched } | { stderr: string }> {
  const stderrFile = await open(join(workDir, 'qemu.stderr'), 'w');
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', stderrFile.fd] });
  await stderrFile.close();
  let exited = false;
  const exit = new Promise<number | null>((resolveExit) => {
    child.on('exit', (code) => {
      exited = true;
      liveQemus.delete(child);
      resolveExit(code);
    });
    child.on('error', (error) => {
      exited = true;
      liveQemus.delete(child);
      resolveExit(null);
      process.stderr.write(`[vm-harness] cannot run qemu-system-x86_64 for ${name}: ${error.message}\n`);
    });
  });
  const stderr = () => {
    try {
      return readFileSync(join(workDir, 'qemu.stderr'), 'utf8');
    } catch {
      return '';
    }
  };
  if (child.pid === undefined) {
    await exit;
    return { stderr: stderr() || 'qemu-system-x86_64 did not start (is qemu-system-x86 installed?)' };
  }
  liveQemus.add(child);
  startWatchdog(child.pid, workDir);
  // QEMU sets up its port forwards before the guest runs: once the first forward accepts (or,
  // without forwards, after a short grace period) a start-up failure is no longer expected.
  const deadline = Date.now() + (hostPorts.length > 0 ? 15_000 : 500);
  while (!exited && Date.now() < deadline) {
    if (hostPorts.length > 0 && (await portAccepts(hostPorts[0]!))) break;
    await sleep(100);
  }
  if (exited) return { stderr: stderr() };
  return { vm: { child, exit, stderr } };
}

// A detached shell that outlives this process: once the process is gone (even killed without
// running exit hooks, as test workers are), it kills the QEMU (if that pid still is our QEMU)
// and removes the work dir.
function startWatchdog(qemuPid: number, workDir: string): void {
  const script = [
    'while kill -0 "$0" 2> /dev/null; do sleep 1; done',
    'grep -q -a -F "$2" "/proc/$1/cmdline" 2> /dev/null && kill -9 "$1" 2> /dev/null',
    '[ -n "$3" ] || { sleep 1; rm -rf "$2"; }',
  ].join('\n');
  const keep = process.env.BALENA_MIGRATE_KEEP_VMS ? '1' : '';
  const watchdog = spawn('sh', ['-c', script, String(process.pid), String(qemuPid), workDir, keep], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.unref();
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolveAccepts) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolveAccepts(true);
    });
    socket.once('error', () => resolveAccepts(false));
  });
}

// Connects once and resolves with what the server sends first ('' when it closes silently,
// as QEMU's user network does while nothing listens in the guest).
function readGreeting(port: number, waitMs: number): Promise<string> {
  return new Promise((resolveGreeting) => {
    let data = '';
    const socket = connect({ host: '127.0.0.1', port });
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolveGreeting(data);
    };
    const timer = setTimeout(finish, waitMs);
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      if (data.includes('\n')) finish();
    });
    socket.once('error', finish);
    socket.once('close', finish);
  });
}

function makeVm(
  name: string,
  launched: Launched,
  workDir: string,
  serialLogPath: string,
  overlayPath: string,
  ports: Map<number, number>,
  varsPath: string | null = null,
  relaunch: (() => Promise<Launched | null>) | null = null,
): Vm {
  let current = launched;
  let stopping = false;
  let exited = false;
  let exitCode: number | null = null;
  const readSerial = (from = 0): string => {
    try {
      const text = readFileSync(serialLogPath);
      return text.subarray(from).toString('utf8');
    } catch {
      return '';
    }
  };
  const serialSize = () => {
    try {
      return statSync(serialLogPath).size;
    } catch {
      return 0;
    }
  };
  // With relaunch (coldReboot), QEMU ends at every guest reboot (-no-reboot) and is started
  // again, unless the guest powered off, QEMU failed, or stop() was called.
  const exit = (async () => {
    let from = 0;
    let code = await current.exit;
    while (relaunch && !stopping && code === 0 && !/reboot: Power down/.test(readSerial(from))) {
      from = serialSize();
      const next = await relaunch();
      if (!next) break;
      current = next;
      if (stopping) current.child.kill('SIGKILL');
      code = await current.exit;
    }
    return code;
  })();
  void exit.then((code) => {
    exited = true;
    exitCode = code;
  });
  const serialTail = (lines = 40) =>
    `--- serial console of VM ${name} (last ${lines} lines; ${serialLogPath}) ---\n` +
    readSerial().replace(/\r/g, '').split('\n').slice(-lines).join('\n') +
    `\n--- end of serial console of VM ${name} ---`;
  const failure = (what: string) =>
    new Error(
      `VM ${name}: ${what}${exited ? ` (QEMU exited with ${exitCode}: ${current.stderr().trim()})` : ''}\n${serialTail()}`,
    );
  const hostPort = (guestPort: number): number => {
    const port = ports.get(guestPort);
    if (port === undefined) throw new Error(`VM ${name} forwards no guest port ${guestPort}`);
    return port;
  };

  return {
    name,
    get pid() {
      return current.child.pid!;
    },
    workDir,
    serialLogPath,
    overlayPath,
    varsPath,
    hostPort,
    get exited() {
      return exited;
    },
    async waitForTcpBanner(guestPort, timeoutMs, prefix = 'SSH-') {
      const port = hostPort(guestPort);
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (exited) throw failure(`exited while waiting for a banner on guest port ${guestPort}`);
        const greeting = await readGreeting(port, Math.min(5000, Math.max(500, deadline - Date.now())));
        if (greeting.startsWith(prefix)) return greeting.split('\n')[0]!.trim();
        await sleep(500);
      }
      throw failure(`no "${prefix}" banner on guest port ${guestPort} within ${timeoutMs} ms`);
    },
    serialOffset: serialSize,
    async waitForSerial(pattern, timeoutMs, fromOffset = 0) {
      const deadline = Date.now() + timeoutMs;
      const matches = (text: string) =>
        typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
      for (;;) {
        if (matches(readSerial(fromOffset))) return;
        if (exited) throw failure(`exited before ${String(pattern)} appeared on the serial console`);
        if (Date.now() > deadline)
          throw failure(`${String(pattern)} did not appear on the serial console within ${timeoutMs} ms`);
        await sleep(250);
      }
    },
    serialTail,
    async stop() {
      if (exited) return;
      stopping = true;
      current.child.kill('SIGTERM');
      if ((await within(exit, 10_000)) === 'timeout') {
        current.child.kill('SIGKILL');
        await exit;
      }
    },
    async waitForExit(timeoutMs) {
      const result = await within(exit, timeoutMs);
      if (result === 'timeout') throw failure(`still running after ${timeoutMs} ms`);
      return result;
    },
  };
}
