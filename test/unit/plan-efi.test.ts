import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ApplyStep, Plan, PlanInput } from '../../orchestrator/plan/plan.ts';
import { renderApplyScripts } from '../../orchestrator/plan/render-apply.ts';
import {
  EFI_ENTRY_LABEL,
  efiVarPath,
  freeBootNumber,
  grubOneShotProblem,
  pickX86BootManager,
  planEfiBoot,
} from '../../orchestrator/platform/efi.ts';
import { planGrubBoot } from '../../orchestrator/platform/grub.ts';
import { planMigration } from '../../orchestrator/platform/plan-migration.ts';
import { parseStage2Config } from '../../stage2/build/stage2-config.ts';
import { factsFixture, factsPlanInput } from '../fixtures/facts-plans.ts';
import { expectGolden, expectPlan, expectRefusal, goldenJson } from '../fixtures/golden-plans.ts';
import { runInitShell } from '../fixtures/stage2/init-shell.ts';

const MiB = 1024 * 1024;
const scratch = mkdtempSync(join(tmpdir(), 'plan-efi-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The Debian UEFI VM as probed, a 16 MiB gzip image of 204 MiB raw, the host's kernel. */
function input(name = 'debian-bookworm-uefi-gpt', edit: (i: PlanInput) => void = () => {}): PlanInput {
  const f = factsFixture(name);
  const shape = {
    fileSizeBytes: 16 * MiB,
    rawSizeBytes: 204 * MiB,
    workDir: f.workDir.path,
    ramMarginBytes: 64 * MiB,
  };
  return factsPlanInput(name, f, shape, edit);
}

const efiPlan = (i: PlanInput): Plan => expectPlan(planEfiBoot(i));
const refusals = (i: PlanInput): string[] => expectRefusal(planEfiBoot(i));

const exec = (p: Plan, n: number): Extract<ApplyStep, { kind: 'exec' }> => {
  const s = p.steps[n];
  if (s?.kind !== 'exec') throw new Error(`step ${n} is not an exec step`);
  return s;
};

describe('planEfiBoot golden plans', () => {
  it('plans the Debian UEFI VM (GPT, ESP on /boot/efi, /boot on its own partition) exactly as the golden file says', () => {
    expectGolden('debian-bookworm-uefi-gpt.efi.json', goldenJson(efiPlan(input())));
  });

  it('plans GRUB on the same UEFI VM with grubenv in /boot/grub on the /boot partition, as the golden file says', () => {
    const r = planGrubBoot(input());
    if (!r.ok) throw new Error(r.reasons.join(' | '));
    expect(r.plan.stage2Config.grubenv).toBe('grub/grubenv');
    expect(r.plan.stage2ConfigPath).toBe('/boot/balena-stage2.yml');
    expectGolden('debian-bookworm-uefi-gpt.grub.json', goldenJson(r.plan));
  });
});

describe('planEfiBoot steps', () => {
  it('puts the kernel and initramfs under \\EFI\\balena-migrate on the ESP and balena-stage2.yml at its root', () => {
    const p = efiPlan(input());
    expect(p.bootManager).toBe('efi');
    expect(p.steps.map((s) => s.description)).toEqual([
      'make sure /boot/efi/EFI exists on the EFI system partition',
      'create /boot/efi/EFI/balena-migrate for the stage2 kernel and initramfs',
      "copy the host's installed kernel /boot/vmlinuz-6.1.0-50-cloud-amd64 (an EFI stub)",
      'copy the stage2 initramfs',
      'write the stage2 config /boot/efi/balena-stage2.yml',
      'check that boot entry number 000A is still free',
      'create the boot entry Boot000A "balena-migrate stage2" (not in BootOrder)',
      'check that Boot000A is "balena-migrate stage2"',
      'boot Boot000A once, on the next reboot (BootNext)',
      'check that BootNext is 000A',
    ]);
    expect(p.stage2ConfigPath).toBe('/boot/efi/balena-stage2.yml');
    expect(p.oneShot).toEqual({
      mechanism: 'efi-bootnext',
      argv: ['efibootmgr', '--quiet', '--bootnext', '000A'],
    });
  });

  it('creates the entry outside BootOrder on the ESP partition, with initrd= and root= (the ESP) as load options', () => {
    const p = efiPlan(input());
    expect(exec(p, 6).argv).toEqual([
      'efibootmgr',
      '--quiet',
      '--create-only',
      '--bootnum',
      '000A',
      '--disk',
      '/dev/vda',
      '--part',
      '2',
      '--label',
      'balena-migrate stage2',
      '--loader',
      '\\EFI\\balena-migrate\\vmlinuz.efi',
      '--unicode',
      'initrd=\\EFI\\balena-migrate\\stage2-initramfs.gz root=PARTUUID=b28586d2-0bf5-a84b-8652-23a1df27d4c6 console=ttyS0,115200 panic=10',
    ]);
  });

  it('undoes only what is ours: the entry when its description is ours, BootNext when it names the entry', () => {
    const p = efiPlan(input());
    const entryVar = efiVarPath('Boot000A');
    expect(exec(p, 5).argv).toEqual(['test', '!', '-e', entryVar]);
    expect(exec(p, 6).undo).toEqual([
      [
        'sh',
        '-c',
        'if [ -e "$1" ] && tr -d "\\000" <"$1" | grep -q -F -e "$2"; then efibootmgr --quiet --bootnum "$3" --delete-bootnum; fi',
        'sh',
        entryVar,
        EFI_ENTRY_LABEL,
        '000A',
      ],
    ]);
    expect(exec(p, 8).undo[0]?.slice(0, 2)).toEqual(['sh', '-c']);
    expect(exec(p, 8).undo[0]?.[2]).toContain('"BootNext: $1"');
    expect(exec(p, 8).undo[0]?.[2]).toContain('--delete-bootnext');
  });

  it('gives stage2 the ESP as its root= partition, nothing of GRUB to restore, and the entry to delete', () => {
    const p = efiPlan(input());
    const step = p.steps.find((s) => s.kind === 'write' && s.path === '/boot/efi/balena-stage2.yml');
    if (step?.kind !== 'write') throw new Error('no stage2 config step');
    const cfg = parseStage2Config(step.content);
    expect(cfg).toMatchObject({
      grubenv: '',
      grubenv_b64: '',
      cleanup: 'EFI/balena-migrate balena-stage2.yml',
      efi_remove_entry: 'Boot000A',
      work_dev: 'UUID=0df93917-9207-4bf0-9af4-945ad9e2a918',
      work_path: 'var/tmp/balena-migrate',
      install_disk_of: 'UUID=0df93917-9207-4bf0-9af4-945ad9e2a918',
    });
  });

  it('renders apply and undo scripts that are valid POSIX sh', () => {
    const scripts = renderApplyScripts(efiPlan(input()));
    for (const [name, text] of Object.entries({ apply: scripts.apply, undo: scripts.undo })) {
      const file = join(scratch, `${name}.sh`);
      writeFileSync(file, text);
      expect(spawnSync('sh', ['-n', file]).status).toBe(0);
      const check = spawnSync('shellcheck', ['-s', 'sh', file], { encoding: 'utf8' });
      if (!check.error) expect(check.stdout).toBe('');
    }
  });

  it('takes the lowest entry number nobody uses: entries, BootOrder and BootCurrent', () => {
    const base = { varsWritable: true, bootNext: null, esp: null };
    expect(freeBootNumber({ ...base, bootCurrent: null, bootOrder: [], entries: [] })).toBe(0);
    expect(
      freeBootNumber({
        ...base,
        bootCurrent: '0002',
        bootOrder: ['0000', '0001', '0003'],
        entries: [{ num: '0004', active: true, label: 'x' }],
      }),
    ).toBe(5);
  });

  it('finds a root on btrfs by its PARTUUID (stage2 reads UUIDs of ext and vfat only)', () => {
    const p = efiPlan(input('opensuse-uefi-btrfs-root'));
    expect(p.stage2Config.install_disk_of).toBe('PARTUUID=7c2e4a6b-1d3f-4b5a-8e9c-0f1a2b3c4d5e');
    expect(p.stage2Config.work_dev).toBe('UUID=a4c8e2f6-3b7d-4e1a-9c5f-6d8b0a2e4c71');
    expect(p.stage2Config.efi_remove_entry).toBe('Boot0003');
  });

  it('is pure: the same input gives the same plan, and the facts are left untouched', () => {
    const i = input();
    const before = structuredClone(i.facts);
    expect(goldenJson(efiPlan(i))).toBe(goldenJson(efiPlan(i)));
    expect(i.facts).toEqual(before);
  });
});

describe('planEfiBoot refusals', () => {
  it('refuses a BIOS host, pointing back to GRUB', () => {
    expect(refusals(input('debian-bookworm-bios-virtio'))).toContainEqual(
      expect.stringContaining('the EFI boot manager needs UEFI firmware; this host boots with a BIOS'),
    );
  });

  it('names every reason at once: read-only efivarfs, no efibootmgr, a pending BootNext, a kernel without EFI stub', () => {
    const reasons = refusals(
      input(undefined, (i) => {
        i.facts.efi!.varsWritable = false;
        i.facts.efi!.bootNext = '0004';
        i.facts.tools.efibootmgr = false;
        i.facts.kernel.imageEfiStub = false;
      }),
    );
    expect(reasons.join('\n')).toMatch(/efivarfs is not mounted read-write/);
    expect(reasons.join('\n')).toMatch(/BootNext is already set \(to Boot0004/);
    expect(reasons.join('\n')).toMatch(/efibootmgr is missing/);
    expect(reasons.join('\n')).toMatch(/is not an EFI stub/);
  });

  it('refuses when no EFI system partition is mounted', () => {
    expect(
      refusals(
        input(undefined, (i) => {
          i.facts.efi!.esp = null;
        }),
      ).join('\n'),
    ).toMatch(/no EFI system partition is mounted at \/boot\/efi, \/efi or \/boot/);
  });

  it('keeps the checks it shares with GRUB: a stage2 config path, RAM, the install disk', () => {
    const reasons = refusals(
      input(undefined, (i) => {
        i.facts.memory.availableBytes = 32 * MiB;
      }),
    );
    expect(reasons.join('\n')).toMatch(/stage2 holds the image in RAM/);
  });

  it('refuses Secure Boot before anything else, whichever boot manager is asked for', () => {
    const r = planMigration(
      input(undefined, (i) => {
        i.facts.firmware.secureBoot = true;
        i.bootManager = 'efi';
      }),
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reasons).toEqual([expect.stringMatching(/^Secure Boot is enabled/)]);
  });
});

describe('choosing between GRUB and the EFI entry on x86', () => {
  it('keeps GRUB on a UEFI host whose GRUB can boot stage2 once', () => {
    const f = factsFixture('debian-bookworm-uefi-gpt');
    expect(grubOneShotProblem(f)).toBeNull();
    expect(pickX86BootManager(f, 'grub')).toEqual({ ok: true, name: 'grub', note: null });
    const r = planMigration(input());
    expect(r.ok && r.plan.bootManager).toBe('grub');
  });

  it('takes the EFI entry on a UEFI host whose grubenv sits on btrfs, and says why', () => {
    const r = planMigration(input('opensuse-uefi-btrfs-root'));
    if (!r.ok) throw new Error(r.reasons.join(' | '));
    expect(r.plan.bootManager).toBe('efi');
    expect(r.plan.notes[0]).toBe(
      'boot manager: efi, a one-shot UEFI boot entry, because GRUB cannot boot stage2 once: ' +
        '/boot/grub2 is on btrfs, where GRUB cannot write grubenv',
    );
  });

  it('takes the EFI entry where grubenv is a symlink onto the ESP, which GRUB itself refuses', () => {
    const linked = (i: PlanInput) => {
      i.facts.grub.envSymlinkTarget = '../efi/EFI/rocky/grubenv';
    };
    const r = planMigration(input(undefined, linked));
    expect(r.ok && r.plan.bootManager).toBe('efi');
    const g = planGrubBoot(input(undefined, linked));
    expect(g.ok).toBe(false);
    if (!g.ok) expect(g.reasons.join('\n')).toMatch(/grubenv is a symlink to \.\.\/efi\/EFI\/rocky\/grubenv/);
  });

  it('never takes the EFI entry on a BIOS host by itself, and refuses it when asked for there', () => {
    const bios = factsFixture('debian-boot-on-lvm');
    expect(pickX86BootManager(bios, 'grub')).toMatchObject({ ok: true, name: 'grub' });
    const r = planMigration(
      input('debian-bookworm-bios-virtio', (i) => {
        i.bootManager = 'efi';
        i.workDir = '/var/tmp/balena-migrate';
      }),
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reasons.join('\n')).toMatch(/needs UEFI firmware; this host boots with a BIOS/);
  });

  it('does what the operator asks on x86, and refuses grub or efi for a board booted otherwise', () => {
    const f = factsFixture('opensuse-uefi-btrfs-root');
    expect(pickX86BootManager(f, 'grub', 'grub')).toMatchObject({ ok: true, name: 'grub' });
    expect(pickX86BootManager(factsFixture('debian-bookworm-uefi-gpt'), 'grub', 'efi')).toMatchObject({
      ok: true,
      name: 'efi',
    });
    expect(pickX86BootManager(f, 'rpi', 'auto')).toEqual({ ok: true, name: 'rpi', note: null });
    const asked = pickX86BootManager(f, 'rpi', 'efi');
    expect(asked.ok).toBe(false);
    if (!asked.ok) expect(asked.reasons[0]).toMatch(/stage2.bootManager efi is for x86-64 PCs/);
  });
});

describe('stage2 and efi_remove_entry', () => {
  function initAccepts(cfgText: string): { ok: boolean; entry: string; log: string } {
    const file = join(scratch, `cfg-${Math.random().toString(36).slice(2)}.yml`);
    writeFileSync(file, cfgText);
    const r = runInitShell(
      'mkdir -p "$STATE"; load_config "$1"; echo "rc=$? entry=$c_efi_remove_entry"; cat "$LOG"',
      [file],
    );
    const m = /rc=(\d+) entry=(\S*)/.exec(r.stdout);
    return { ok: m?.[1] === '0', entry: m?.[2] ?? '', log: r.stdout };
  }
  const configText = () => {
    const step = efiPlan(input()).steps.find((s) => s.kind === 'write');
    if (step?.kind !== 'write') throw new Error('no stage2 config step');
    return step.content;
  };

  it('the init reads the entry the plan names and accepts the whole config', () => {
    const r = initAccepts(configText());
    expect(r.ok, r.log).toBe(true);
    expect(r.entry).toBe('Boot000A');
  });

  it('the init refuses an entry name that is not Boot and four hex digits', () => {
    const r = initAccepts(
      configText().replace("efi_remove_entry: 'Boot000A'", "efi_remove_entry: '../BootOrder'"),
    );
    expect(r.ok).toBe(false);
    expect(r.log).toMatch(/efi_remove_entry must be empty or Boot and four upper-case hex digits/);
  });

  it('deletes only a balena-migrate entry, and never fails the migration over it', () => {
    // an efivarfs stand-in: the init's own function on plain files
    const vars = join(scratch, 'efivars');
    mkdirSync(vars, { recursive: true });
    const guid = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
    const ucs2 = (t: string) => Buffer.from(t, 'utf16le');
    const option = (label: string) =>
      Buffer.concat([
        Buffer.from([7, 0, 0, 0, 1, 0, 0, 0, 4, 0]),
        ucs2(label),
        Buffer.from([0, 0, 0x7f, 0xff]),
      ]);
    writeFileSync(join(vars, `Boot000A-${guid}`), option('balena-migrate stage2'));
    writeFileSync(join(vars, `Boot0001-${guid}`), option('debian'));
    const remove = (entry: string) =>
      runInitShell(
        `mkdir -p "$STATE"; EFI_VARS="$1"; is_mounted() { return 0; }; c_efi_remove_entry=${entry}; remove_efi_entry; echo "rc=$?"; cat "$LOG"`,
        [vars],
      ).stdout;
    const ours = remove('Boot000A');
    expect(ours).toMatch(/rc=0/);
    expect(ours).toMatch(/efi: deleted the one-shot boot entry Boot000A/);
    expect(existsSync(join(vars, `Boot000A-${guid}`))).toBe(false);
    const theirs = remove('Boot0001');
    expect(theirs).toMatch(/rc=0/);
    expect(theirs).toMatch(/Boot0001 is not a balena-migrate boot entry; it is left alone/);
    expect(existsSync(join(vars, `Boot0001-${guid}`))).toBe(true);
    expect(remove('Boot000A')).toMatch(/efi: the boot entry Boot000A is already gone/);
  });
});

describe('probe.sh on efivarfs', () => {
  it('reads boot entries, BootCurrent, BootNext and BootOrder from the variables themselves', () => {
    const root = join(scratch, 'sysroot');
    const vars = join(root, 'sys/firmware/efi/efivars');
    mkdirSync(vars, { recursive: true });
    mkdirSync(join(root, 'proc/self'), { recursive: true });
    writeFileSync(
      join(root, 'proc/self/mounts'),
      'efivarfs /sys/firmware/efi/efivars efivarfs rw,nosuid,nodev,noexec,relatime 0 0\n',
    );
    const guid = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
    const attrs = Buffer.from([7, 0, 0, 0]);
    const u16 = (...n: number[]) => Buffer.concat([attrs, ...n.map((x) => Buffer.from([x & 0xff, x >> 8]))]);
    const option = (active: number, label: string) =>
      Buffer.concat([
        attrs,
        Buffer.from([active, 0, 0, 0, 4, 0]),
        Buffer.from(label, 'utf16le'),
        Buffer.from([0, 0, 0x7f, 0xff, 4, 0]),
      ]);
    writeFileSync(join(vars, `BootCurrent-${guid}`), u16(0x1));
    writeFileSync(join(vars, `BootNext-${guid}`), u16(0x1a));
    writeFileSync(join(vars, `BootOrder-${guid}`), u16(0x1, 0x0, 0x10));
    writeFileSync(join(vars, `Boot0000-${guid}`), option(1, 'UiApp'));
    writeFileSync(join(vars, `Boot0001-${guid}`), option(1, 'debian'));
    writeFileSync(join(vars, `Boot001A-${guid}`), option(0, 'tab\there é'));
    const probe = join(import.meta.dirname, '../../remote-payload/probe.sh');
    const r = spawnSync('sh', [probe, '/var/tmp/balena-migrate'], {
      env: { ...process.env, BM_SYSROOT: root },
      encoding: 'utf8',
    });
    const efi = r.stdout.split('\n').filter((l) => l.startsWith('efi_'));
    expect(efi).toEqual([
      'efi_vars_writable\t1',
      'efi_boot_current\t0001',
      'efi_boot_next\t001A',
      'efi_boot_order\t0001,0000,0010',
      'efi_boot_entry\tnum=0000\tactive=1\tlabel=UiApp',
      'efi_boot_entry\tnum=0001\tactive=1\tlabel=debian',
      'efi_boot_entry\tnum=001A\tactive=0\tlabel=tab?here ?',
    ]);
  });
});
