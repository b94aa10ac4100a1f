import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { probeSysroot } from '../../orchestrator/cli/commands/check-offline.ts';
import type { Facts } from '../../orchestrator/facts/facts.ts';
import { chooseDevice } from '../../orchestrator/platform/device.ts';
import { checkDeviceTypes, decodeRpiRevision } from '../../orchestrator/platform/registry.ts';

// Which board a host is, from every kind of evidence the probe gathers: Raspberry Pi revision
// codes, device-tree compatible strings and model, DMI, the architecture. Not one pattern per
// model string: "Raspberry Pi 3 Model B Plus Rev 1.3" is a Raspberry Pi 3 however it is spelt.

const SYSROOTS = join(import.meta.dirname, '../fixtures/sysroots');
const WORK = '/var/tmp/balena-migrate';
const sysroot = (name: string): Facts => probeSysroot(join(SYSROOTS, name), WORK);

/** A Raspberry Pi known only by what the test gives (no other evidence left over). */
function pi(hw: Partial<Facts['hardware']>, arch = 'aarch64'): Facts {
  const f = sysroot('rpi4-raspios-bookworm');
  f.arch = arch;
  f.hardware = {
    ...f.hardware,
    dtModel: null,
    dtCompatible: [],
    cpuModel: null,
    cpuRevision: null,
    cpuHardware: 'BCM2835',
    ...hw,
  };
  return f;
}

describe('identifying the board of every sysroot fixture', () => {
  it.each([
    ['rpi4-raspios-bookworm', 'rpi4', 'raspberrypi4-64', 'rpi'],
    ['rpi3bplus-raspios-bullseye', 'rpi3', 'raspberrypi3', 'rpi'],
    ['rpi4-ubuntu-2204', 'rpi4', 'raspberrypi4-64', 'rpi'],
    ['bbb-debian11-emmc', 'beaglebone-black', 'beaglebone-black', 'uboot'],
    ['nuc-ubuntu-uefi', 'intel-nuc', 'genericx86-64-ext', 'grub'],
    ['nuc-ubuntu-bios-separate-boot', 'intel-nuc', 'genericx86-64-ext', 'grub'],
  ])('makes %s a %s, device type %s, booted by %s', (name, ruleId, deviceType, bootManager) => {
    expect(chooseDevice(sysroot(name))).toMatchObject({
      ok: true,
      device: { ruleId, deviceType, bootManager },
    });
  });

  it('names every piece of evidence that agreed on the Raspberry Pi 3 B+', () => {
    const choice = chooseDevice(sysroot('rpi3bplus-raspios-bullseye'));
    expect(choice.ok && choice.device.evidence).toEqual([
      'Raspberry Pi revision code a020d3',
      'device-tree compatible "raspberrypi,3-model-b-plus"',
      'device-tree model "Raspberry Pi 3 Model B Plus Rev 1.3"',
    ]);
  });

  it('takes an Intel NUC by its DMI names and accepts intel-nuc and generic-amd64 images for it too', () => {
    const choice = chooseDevice(sysroot('nuc-ubuntu-uefi'));
    expect(choice.ok && choice.device.evidence).toEqual(['DMI "Intel(R) Client Systems NUC8i5BEH"']);
    expect(choice.ok && choice.device.deviceTypes).toEqual([
      'genericx86-64-ext',
      'intel-nuc',
      'generic-amd64',
    ]);
  });
});

describe('Raspberry Pi revision codes', () => {
  it.each([
    ['0002', 'rpi1', 'raspberry-pi', 'armv6l'],
    ['0010', 'rpi1', 'raspberry-pi', 'armv6l'],
    ['1000002', 'rpi1', 'raspberry-pi', 'armv6l'],
    ['900092', 'rpi1', 'raspberry-pi', 'armv6l'],
    ['9000c1', 'rpi1', 'raspberry-pi', 'armv6l'],
    ['a01041', 'rpi2', 'raspberry-pi2', 'armv7l'],
    ['a22042', 'rpi2', 'raspberry-pi2', 'armv7l'],
    ['a02082', 'rpi3', 'raspberrypi3', 'armv7l'],
    ['a020d3', 'rpi3', 'raspberrypi3-64', 'aarch64'],
    ['9020e0', 'rpi3', 'raspberrypi3', 'armv7l'],
    ['a020a0', 'rpi3', 'raspberrypi3', 'armv7l'],
    ['902120', 'rpi0-2w', 'raspberrypi0-2w-64', 'aarch64'],
    ['c03114', 'rpi4', 'raspberrypi4-64', 'aarch64'],
    ['d03115', 'rpi4', 'raspberrypi4-64', 'armv7l'],
    ['c03130', 'rpi400', 'raspberrypi400-64', 'aarch64'],
    ['b03140', 'rpi-cm4', 'raspberrypicm4-ioboard', 'aarch64'],
    ['d04170', 'rpi5', 'raspberrypi5', 'aarch64'],
  ])('reads %s as %s (%s on %s)', (code, ruleId, deviceType, arch) => {
    expect(chooseDevice(pi({ cpuRevision: code }, arch))).toMatchObject({
      ok: true,
      device: { ruleId, deviceType },
    });
  });

  it('decodes new-style codes by their board type bits and old-style codes as first-generation boards', () => {
    expect(decodeRpiRevision('a020d3')).toEqual({ code: 'a020d3', newStyle: true, type: 0x0d });
    expect(decodeRpiRevision('00c03114')).toEqual({ code: 'c03114', newStyle: true, type: 0x11 });
    expect(decodeRpiRevision('1000002')).toEqual({ code: '1000002', newStyle: false, type: null });
    expect(decodeRpiRevision('0000')).toBeNull();
    expect(decodeRpiRevision('not hex')).toBeNull();
  });

  it('lets a Raspberry Pi 3 run the 32- or the 64-bit device type, its own kernel choosing the default', () => {
    const choice = chooseDevice(pi({ cpuRevision: 'a020d3' }, 'aarch64'));
    expect(choice.ok && choice.device.deviceTypes).toEqual(['raspberrypi3-64', 'raspberrypi3']);
  });

  it('refuses a board type it does not know, naming the code', () => {
    const choice = chooseDevice(pi({ cpuRevision: 'd04190', dtModel: 'Raspberry Pi 500 Rev 1.0' }));
    expect(choice.ok).toBe(false);
    expect(!choice.ok && choice.reasons[0]).toMatch(
      /^this Raspberry Pi's revision code d04190 \(board type 0x19\) is not a board balena-migrate knows \(Raspberry Pi 500 Rev 1.0\); supported: /,
    );
  });
});

describe('other evidence, and evidence that disagrees', () => {
  it('recognises "Raspberry Pi 3 Model B Plus Rev 1.3" from the model string alone', () => {
    expect(chooseDevice(pi({ dtModel: 'Raspberry Pi 3 Model B Plus Rev 1.3' }, 'armv7l'))).toMatchObject({
      ok: true,
      device: { ruleId: 'rpi3', deviceType: 'raspberrypi3' },
    });
  });

  it.each([
    ['Raspberry Pi 3 Model B Rev 1.2', 'rpi3'],
    ['Raspberry Pi 3 Model A Plus Rev 1.0', 'rpi3'],
    ['Raspberry Pi Compute Module 3 Plus Rev 1.0', 'rpi3'],
    ['Raspberry Pi Zero W Rev 1.1', 'rpi1'],
    ['Raspberry Pi Model B Plus Rev 1.2', 'rpi1'],
    ['Raspberry Pi Zero 2 W Rev 1.0', 'rpi0-2w'],
    ['Raspberry Pi 2 Model B Rev 1.1', 'rpi2'],
    ['Raspberry Pi 4 Model B Rev 1.5', 'rpi4'],
    ['Raspberry Pi 400 Rev 1.0', 'rpi400'],
    ['Raspberry Pi Compute Module 4 Rev 1.0', 'rpi-cm4'],
    ['Raspberry Pi 5 Model B Rev 1.0', 'rpi5'],
  ])('takes the model "%s" as %s', (dtModel, ruleId) => {
    const arch = ruleId === 'rpi1' ? 'armv6l' : 'aarch64';
    expect(chooseDevice(pi({ dtModel }, arch))).toMatchObject({ ok: true, device: { ruleId } });
  });

  it('takes a BeagleBone Green for what it is, though its device tree also claims to be a Black', () => {
    const f = sysroot('bbb-debian11-emmc');
    f.hardware.dtModel = 'TI AM335x BeagleBone Green';
    f.hardware.dtCompatible = ['ti,am335x-bone-green', 'ti,am335x-bone-black', 'ti,am335x-bone', 'ti,am33xx'];
    expect(chooseDevice(f)).toMatchObject({
      ok: true,
      device: { ruleId: 'beaglebone-green', deviceType: 'beaglebone-green', bootManager: 'uboot' },
    });
  });

  it('refuses when the revision code and the device tree name different boards', () => {
    const choice = chooseDevice(
      pi({ cpuRevision: 'a020d3', dtCompatible: ['raspberrypi,4-model-b', 'brcm,bcm2711'] }),
    );
    expect(choice).toEqual({
      ok: false,
      reasons: [
        'the evidence disagrees about what this board is: Raspberry Pi revision code a020d3 says Raspberry Pi 3 ' +
          '(B, B+, A+, Compute Module 3/3+), device-tree compatible "raspberrypi,4-model-b" says Raspberry Pi 4 Model B; ' +
          'check the host (an overlay or a foreign device tree?) and re-run',
      ],
    });
  });

  it('refuses a Raspberry Pi it cannot tell apart rather than guessing', () => {
    const choice = chooseDevice(pi({ dtCompatible: ['brcm,bcm2711'] }));
    expect(!choice.ok && choice.reasons[0]).toMatch(
      /^this is a Raspberry Pi \(brcm,bcm2711\) that balena-migrate cannot tell apart/,
    );
  });

  it('refuses a board whose kernel architecture it cannot run', () => {
    const choice = chooseDevice(pi({ cpuRevision: 'd04170' }, 'armv7l'));
    expect(!choice.ok && choice.reasons[0]).toMatch(
      /looks like a Raspberry Pi 5 .* but its kernel is armv7l/,
    );
  });
});

describe('the image and config.json must be for this board', () => {
  const pi3 = { name: 'Raspberry Pi 3', evidence: ['Raspberry Pi revision code a020d3'] };

  it('installs the 32-bit type on a 64-bit Raspberry Pi 3 when that is what the image is for', () => {
    expect(
      checkDeviceTypes({
        ...pi3,
        accepted: ['raspberrypi3-64', 'raspberrypi3'],
        imageType: 'raspberrypi3',
        configType: 'raspberrypi3',
        allow: false,
      }),
    ).toEqual({
      deviceType: 'raspberrypi3',
      reasons: [],
      notes: [
        'device type: raspberrypi3, which the Raspberry Pi 3 also runs (its default would be raspberrypi3-64)',
      ],
    });
  });

  it('refuses an image for another board, saying which images would do', () => {
    const r = checkDeviceTypes({
      ...pi3,
      accepted: ['raspberrypi3-64', 'raspberrypi3'],
      imageType: 'raspberrypi4-64',
      configType: null,
      allow: false,
    });
    expect(r.reasons).toEqual([
      'the image is for raspberrypi4-64 (its device-type.json), but this host is a Raspberry Pi 3 (Raspberry Pi ' +
        'revision code a020d3): balenaOS for raspberrypi4-64 would not boot it; use an image for raspberrypi3-64 or ' +
        'raspberrypi3, or set allowDeviceTypeMismatch: true (--allow-device-type-mismatch) if you know better',
    ]);
  });

  it('refuses a config.json made for another device type, and a pair that does not match', () => {
    const other = checkDeviceTypes({
      ...pi3,
      accepted: ['raspberrypi3-64', 'raspberrypi3'],
      imageType: 'raspberrypi3-64',
      configType: 'intel-nuc',
      allow: false,
    });
    expect(other.reasons[0]).toMatch(
      /^config.json is for a intel-nuc \(its deviceType\), but this host is a Raspberry Pi 3/,
    );
    const pair = checkDeviceTypes({
      ...pi3,
      accepted: ['raspberrypi3-64', 'raspberrypi3'],
      imageType: 'raspberrypi3-64',
      configType: 'raspberrypi3',
      allow: false,
    });
    expect(pair.reasons).toEqual([
      'the image is for raspberrypi3-64 but config.json for raspberrypi3: use a matching pair, or set ' +
        'allowDeviceTypeMismatch: true (--allow-device-type-mismatch) if you know better',
    ]);
  });

  it('plans anyway when the operator allows the mismatch, with a warning in the notes', () => {
    const r = checkDeviceTypes({
      ...pi3,
      accepted: ['raspberrypi3-64', 'raspberrypi3'],
      imageType: 'raspberrypi4-64',
      configType: null,
      allow: true,
    });
    expect(r.reasons).toEqual([]);
    expect(r.deviceType).toBe('raspberrypi4-64');
    expect(r.notes).toContain(
      'WARNING (allowDeviceTypeMismatch): the image is for raspberrypi4-64 (its device-type.json), but this host is ' +
        'a Raspberry Pi 3 (Raspberry Pi revision code a020d3)',
    );
  });

  it("takes balena's older names for the types they stand for", () => {
    const r = checkDeviceTypes({
      name: 'Raspberry Pi 1',
      evidence: [],
      accepted: ['raspberry-pi'],
      imageType: 'raspberry-pi',
      configType: 'raspberrypi',
      allow: false,
    });
    expect(r.reasons).toEqual([]);
  });

  it('says so when the image carries no device-type.json and only config.json could be checked', () => {
    const r = checkDeviceTypes({
      ...pi3,
      accepted: ['raspberrypi3-64', 'raspberrypi3'],
      imageType: null,
      configType: 'raspberrypi3-64',
      allow: false,
    });
    expect(r).toEqual({
      deviceType: 'raspberrypi3-64',
      reasons: [],
      notes: [
        'device type: the image has no device-type.json on its boot partition; checked against config.json only',
      ],
    });
  });
});
