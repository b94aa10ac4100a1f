import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { busyboxArchProblem, readElfInfo } from '../../orchestrator/platform/busybox-arch.ts';
import { ensureArmhfBusybox } from '../helpers/busybox-armhf.ts';

// The busybox that becomes stage2's userland must run on the host: a wrong one means no stage2,
// and on a board without a one-shot boot a boot loop. Checked on real binaries: this machine's
// busybox-static and Debian's armhf one.

let armhf: Buffer;
const amd64 = readFileSync('/bin/busybox');
beforeAll(async () => {
  armhf = readFileSync(await ensureArmhfBusybox());
}, 120_000);

/** An ELF header of a 64-bit little-endian executable for MACHINE, nothing else. */
function elf64(machine: number): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2;
  b[5] = 1;
  b.writeUInt16LE(machine, 18);
  return b;
}

describe('what a busybox is built for', () => {
  it("reads this machine's busybox-static as x86_64", () => {
    expect(readElfInfo(amd64)).toEqual({ machine: 'x86_64', bits: 64, armArch: null });
  });

  it("reads Debian's armhf busybox-static as 32-bit ARM built for ARMv7, from its .ARM.attributes", () => {
    expect(readElfInfo(armhf)).toEqual({ machine: 'arm', bits: 32, armArch: 10 });
  });
});

describe('whether it runs on the host', () => {
  it('takes an x86_64 busybox for an x86_64 host and an arm64 one for an aarch64 Raspberry Pi', () => {
    expect(busyboxArchProblem(amd64, '/bin/busybox', 'x86_64')).toBeNull();
    expect(busyboxArchProblem(elf64(0xb7), '/arm64/busybox', 'aarch64')).toBeNull();
  });

  it('refuses an x86_64 busybox for a Raspberry Pi, saying what would happen and which one to use', () => {
    expect(busyboxArchProblem(amd64, '/bin/busybox', 'aarch64')).toBe(
      'the stage2 busybox /bin/busybox is built for x86_64, but this host runs aarch64: stage2 could not start ' +
        '(and a board without a one-shot boot would boot into it again and again); pass --busybox ' +
        "(stage2.busybox) with a static busybox for aarch64, e.g. from Debian's busybox-static:arm64",
    );
  });

  it('takes the armhf busybox on an ARMv7 board and refuses it on an ARMv6 Raspberry Pi 1 or Zero', () => {
    expect(busyboxArchProblem(armhf, '/armhf/busybox', 'armv7l')).toBeNull();
    expect(busyboxArchProblem(armhf, '/armhf/busybox', 'armv6l')).toMatch(
      /^the stage2 busybox \/armhf\/busybox is built for arm \(ARMv7\), but this host runs armv6l: .*busybox-static:armel \(Debian's armhf build needs ARMv7\)$/,
    );
  });

  it('refuses a 32-bit ARM busybox on a 64-bit kernel, which may not run 32-bit programs', () => {
    expect(busyboxArchProblem(armhf, '/armhf/busybox', 'aarch64')).toMatch(
      /built for arm \(ARMv7\), but this host runs aarch64/,
    );
  });

  it('refuses what is not an ELF executable', () => {
    expect(busyboxArchProblem(Buffer.from('#!/bin/sh\n'), '/tmp/busybox', 'x86_64')).toBe(
      'the stage2 busybox /tmp/busybox is not an ELF executable',
    );
  });
});
