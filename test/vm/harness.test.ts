// The VM test bed itself: the cached Debian base disk boots with GRUB and takes SSH logins,
// a grub-reboot one-shot entry runs exactly once, and the balenaOS-shaped test image boots
// once written over a whole disk. Needs root and QEMU; skipped otherwise.
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, onTestFailed, test } from 'vitest';
import { acquireLock } from './harness/cache.ts';
import {
  type BaseDisk,
  copyImageWithBootFiles,
  createOverlay,
  ensureBalenaTestImage,
  ensureDebianBase,
  knownHostsLine,
  planBalenaPartitions,
  type SshTarget,
  sshExec,
  sshRun,
  startVm,
  type Vm,
  waitForSsh,
  writeImageOverDisk,
} from './harness/index.ts';

function hasProgram(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const canBootVms = process.getuid?.() === 0 && hasProgram('qemu-system-x86_64') && hasProgram('debootstrap');
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
const timing = (what: string, since: number) => console.log(`[timing] ${what}: ${seconds(since)}`);

describe('the balena test image layout', () => {
  test('has resin-boot, resin-rootA, resin-rootB and resin-state + resin-data as logical partitions, 4 MiB aligned', () => {
    const { partitions, extendedStartMiB, totalMiB } = planBalenaPartitions();
    expect(partitions.map((p) => [p.number, p.label, p.fs])).toEqual([
      [1, 'resin-boot', 'vfat'],
      [2, 'resin-rootA', 'ext4'],
      [3, 'resin-rootB', 'ext4'],
      [5, 'resin-state', 'ext4'],
      [6, 'resin-data', 'ext4'],
    ]);
    for (const part of partitions) expect(part.startBytes % (4 * 1024 * 1024)).toBe(0);
    expect(extendedStartMiB * 1024 * 1024).toBeLessThan(partitions[3]!.startBytes);
    const last = partitions[partitions.length - 1]!;
    expect(last.startBytes + last.sizeBytes).toBe(totalMiB * 1024 * 1024);
    expect(totalMiB).toBeLessThanOrEqual(300);
  });
});

describe('the build lock', () => {
  test('makes a second taker wait until the first releases it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'harness-lock-'));
    try {
      const path = join(dir, 'x.lock');
      const releaseFirst = await acquireLock(path);
      let secondHasIt = false;
      const second = acquireLock(path).then((release) => {
        secondHasIt = true;
        return release;
      });
      await new Promise((r) => setTimeout(r, 1500));
      expect(secondHasIt).toBe(false);
      await releaseFirst();
      await (await second)();
      expect(secondHasIt).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('takes over a lock whose owner process is gone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'harness-lock-'));
    try {
      const path = join(dir, 'x.lock');
      await writeFile(path, JSON.stringify({ pid: 2 ** 22 + 1, host: hostname() }));
      const release = await acquireLock(path, () => false, 5000);
      await release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('lets a waiter go as soon as what it waits for exists', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'harness-lock-'));
    try {
      const path = join(dir, 'x.lock');
      const releaseFirst = await acquireLock(path);
      const release = await acquireLock(path, () => true, 5000);
      await release();
      await releaseFirst();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!canBootVms)('the VM test bed', () => {
  let base: BaseDisk;

  beforeAll(async () => {
    const started = Date.now();
    base = await ensureDebianBase();
    timing('ensureDebianBase (cached after the first build)', started);
  }, 1_800_000);

  describe('the base Debian disk', () => {
    let vm: Vm;
    let root: SshTarget;
    let migrator: SshTarget;

    beforeAll(async () => {
      const started = Date.now();
      vm = await startVm({ name: 'harness-debian', disk: base.disk, forwards: [{ guestPort: 22 }] });
      root = {
        port: vm.hostPort(22),
        user: 'root',
        privateKeyPath: base.sshKeyPath,
        hostPublicKey: base.hostPublicKey,
      };
      migrator = { ...root, user: 'migrator' };
      await vm.waitForTcpBanner(22, 240_000);
      await waitForSsh(root, 60_000);
      timing('Debian boot through GRUB to SSH', started);
    }, 360_000);

    afterAll(async () => {
      await vm?.stop();
    });

    test('boots through GRUB from its MBR with a serial console and lets root in with the test key', async () => {
      onTestFailed(() => console.log(vm.serialTail(80)));
      expect((await sshRun(root, 'id -u')).trim()).toBe('0');
      const cmdline = await sshRun(root, 'cat /proc/cmdline');
      expect(cmdline).toMatch(/BOOT_IMAGE=/);
      expect(cmdline).toMatch(/console=ttyS0/);
      expect(await sshRun(root, '. /etc/os-release && echo $ID $VERSION_CODENAME')).toBe('debian bookworm\n');
      expect(await sshRun(root, 'findfs LABEL=debian-root')).toBe('/dev/vda1\n');
      expect(await sshRun(root, 'uname -r')).toBe(`${base.kernelVersion}\n`);
    }, 60_000);

    test('has the host key known in advance, usable as a known_hosts line by OpenSSH', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'harness-known-hosts-'));
      try {
        const knownHosts = join(dir, 'known_hosts');
        await writeFile(knownHosts, `${knownHostsLine(root.port, base.hostPublicKey)}\n`);
        const out = execFileSync('ssh', [
          ...[
            '-o',
            'BatchMode=yes',
            '-o',
            'StrictHostKeyChecking=yes',
            '-o',
            `UserKnownHostsFile=${knownHosts}`,
          ],
          ...['-o', 'GlobalKnownHostsFile=/dev/null', '-i', base.sshKeyPath, '-p', String(root.port)],
          'root@127.0.0.1',
          'hostname',
        ]);
        expect(out.toString()).toBe('debian-vm\n');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }, 60_000);

    test('lets migrator in with the same key and gives it passwordless sudo', async () => {
      onTestFailed(() => console.log(vm.serialTail(80)));
      expect((await sshRun(migrator, 'id -un')).trim()).toBe('migrator');
      expect((await sshRun(migrator, 'sudo -n id -u')).trim()).toBe('0');
    }, 60_000);

    test('runs a grub-reboot one-shot entry exactly once, then boots Debian again with next_entry cleared', async () => {
      onTestFailed(() => console.log(vm.serialTail(120)));
      const marker = `ONE-SHOT-${Date.now().toString(36)}`;
      const script = [
        'set -e',
        `printf '#!/bin/sh\\necho %s > /dev/ttyS0\\necho b > /proc/sysrq-trigger\\n' '${marker}' > /usr/local/sbin/harness-one-shot`,
        'chmod 755 /usr/local/sbin/harness-one-shot',
        'kernel=$(uname -r)',
        `cat > /etc/grub.d/45_harness_one_shot <<EOF
#!/bin/sh
cat <<'GRUB'
menuentry 'harness one-shot' --id harness-one-shot {
  search --no-floppy --label debian-root --set=root
  linux /boot/vmlinuz-$kernel root=LABEL=debian-root ro console=ttyS0,115200 init=/usr/local/sbin/harness-one-shot
  initrd /boot/initrd.img-$kernel
}
GRUB
EOF`,
        'chmod 755 /etc/grub.d/45_harness_one_shot',
        'update-grub 2>&1',
        'grub-reboot harness-one-shot',
        'grub-editenv list',
      ].join('\n');
      const prepared = Date.now();
      const env = await sshRun(root, script, 180_000);
      expect(env).toMatch(/^next_entry=harness-one-shot$/m);
      timing('update-grub + grub-reboot', prepared);

      const bootId = await sshRun(root, 'cat /proc/sys/kernel/random/boot_id');
      const offset = vm.serialOffset();
      const rebooted = Date.now();
      await sshExec(root, "nohup sh -c 'sleep 1; systemctl reboot' > /dev/null 2>&1 &", 20_000);
      await vm.waitForSerial(marker, 180_000, offset);
      timing('reboot into the one-shot entry', rebooted);
      await vm.waitForTcpBanner(22, 240_000);
      await waitForSsh(root, 120_000);
      timing('one-shot cycle back to SSH in Debian', rebooted);

      expect(await sshRun(root, 'cat /proc/sys/kernel/random/boot_id')).not.toBe(bootId);
      expect(await sshRun(root, 'cat /proc/cmdline')).not.toMatch(/harness-one-shot/);
      expect(await sshRun(root, 'grub-editenv list')).not.toMatch(/^next_entry=\S/m);
    }, 600_000);
  });

  describe('the balena test image', () => {
    let vm: Vm | undefined;
    let work: string;

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'harness-balena-'));
    });

    afterAll(async () => {
      await vm?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('gunzips to the raw image', async () => {
      const started = Date.now();
      const image = await ensureBalenaTestImage();
      timing('ensureBalenaTestImage (cached after the first build)', started);
      let bytes = 0;
      for await (const chunk of createReadStream(image.imgGz).pipe(createGunzip()))
        bytes += (chunk as Buffer).length;
      expect(bytes).toBe(image.rawSizeBytes);
    }, 1_800_000);

    test('written over a whole disk, boots into the test userland serving os-release and config.json on port 22222', async () => {
      const image = await ensureBalenaTestImage();
      const config = {
        deviceType: 'genericx86-64-ext',
        uuid: 'harness0123456789',
        os: { sshKeys: [base.sshPublicKey] },
      };
      const prepared = Date.now();
      const configured = await copyImageWithBootFiles(image.img, join(work, 'balena.img'), {
        'config.json': `${JSON.stringify(config, null, 2)}\n`,
        'balena-migrate-stage2.log': 'stage2: hello from the harness\n',
      });
      const disk = await createOverlay(base.disk, join(work, 'disk.qcow2'));
      await writeImageOverDisk(configured, disk);
      timing('image written over an overlay of the base disk', prepared);

      const started = Date.now();
      const extraDisk = join(work, 'extra.raw');
      await writeFile(extraDisk, Buffer.alloc(0));
      await truncate(extraDisk, 16 * 1024 * 1024);
      const balena = await startVm({
        name: 'harness-balena',
        disk,
        memMiB: 512,
        forwards: [{ guestPort: 22222 }],
        extraDisks: [extraDisk],
      });
      vm = balena;
      onTestFailed(() => console.log(balena.serialTail(80)));
      await balena.waitForTcpBanner(22222, 180_000);
      const root: SshTarget = {
        port: balena.hostPort(22222),
        user: 'root',
        privateKeyPath: base.sshKeyPath,
        hostPublicKey: image.hostPublicKey,
      };
      await waitForSsh(root, 60_000);
      timing('balena test image boot to SSH on 22222', started);

      const osRelease = await sshRun(root, 'cat /etc/os-release');
      expect(osRelease).toMatch(/^ID=balena-os$/m);
      expect(osRelease).toMatch(/^NAME=balenaOS$/m);
      expect(JSON.parse(await sshRun(root, `cat ${image.bootMountPoint}/config.json`))).toEqual(config);
      expect(await sshRun(root, `cat ${image.bootMountPoint}/balena-migrate-stage2.log`)).toBe(
        'stage2: hello from the harness\n',
      );
      const labels = await sshRun(
        root,
        'for l in resin-boot resin-rootA resin-rootB resin-state resin-data; do echo "$l $(findfs LABEL=$l)"; done',
      );
      expect(labels).toBe(
        'resin-boot /dev/vda1\nresin-rootA /dev/vda2\nresin-rootB /dev/vda3\nresin-state /dev/vda5\nresin-data /dev/vda6\n',
      );
      expect(await sshRun(root, 'cat /sys/block/vdb/size')).toBe(`${(16 * 1024 * 1024) / 512}\n`);
    }, 1_800_000);
  });
});
