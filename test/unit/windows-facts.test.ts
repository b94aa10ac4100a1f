import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseWindowsFacts, WindowsProbeParseError } from '../../orchestrator/facts/windows.ts';
import { parseBcdeditEnum, parseManageBdeStatus } from '../../orchestrator/facts/windows-text.ts';

const DIR = join(import.meta.dirname, '../fixtures/windows');
const raw = (name: string): string => readFileSync(join(DIR, `${name}.json`), 'utf8');
const facts = (name: string) => parseWindowsFacts(raw(name));

describe('parseWindowsFacts on recorded probe outputs', () => {
  it('reads a clean Windows 11 UEFI PC: ESP with its GUID and free space, C: with its GUID', () => {
    const f = facts('win11-uefi-clean');
    expect(f.hostname).toBe('KIOSK-0042');
    expect(f.os).toEqual({
      caption: 'Microsoft Windows 11 Pro',
      version: '10.0.22631',
      build: 22631,
      architecture: '64-bit',
    });
    expect(f.arch).toBe('x86_64');
    expect(f.isAdmin).toBe(true);
    expect(f.firmware.type).toBe('uefi');
    expect(f.secureBoot).toEqual({ enabled: false, reason: null });
    expect(f.esp).toMatchObject({
      diskNumber: 0,
      partitionNumber: 1,
      guid: '4f2b8c1d-93a6-4e7b-b5c2-7d1e9f0a3b64',
      gptType: 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b',
      offsetBytes: 1048576,
      sizeBytes: 100 * 1024 * 1024,
      freeBytes: 67 * 1024 * 1024,
      fileSystem: 'FAT32',
    });
    expect(f.esp?.files['\\EFI\\Microsoft\\Boot\\bootmgfw.efi']).toBe(true);
    expect(f.workDir.partition).toMatchObject({
      driveLetter: 'C',
      guid: '9c3e7a52-1b4d-4f68-8e2a-5d7c9b1f0e43',
      fileSystem: 'NTFS',
      freeBytes: 301 * 1024 ** 3,
    });
    expect(f.disks[0]).toMatchObject({
      number: 0,
      busType: 'NVMe',
      partitionStyle: 'GPT',
      logicalSectorSize: 512,
    });
    expect(f.memory.totalBytes).toBe(17006919680);
    expect(f.bitlocker).toEqual({
      source: 'Get-BitLockerVolume',
      volumes: [
        {
          mountPoint: 'C:',
          volumeStatus: 'FullyDecrypted',
          protectionStatus: 'Off',
          encryptionPercentage: 0,
          lockStatus: 'Unlocked',
        },
      ],
      error: null,
    });
    expect(f.fastStartup).toBe(true);
  });

  it('decodes the UEFI boot options and recognises the one bcdedit manages', () => {
    const f = facts('win11-uefi-clean');
    expect(f.efi.bootOrder).toEqual([0, 1]);
    expect(f.efi.bootNext).toBeNull();
    expect(f.efi.bootCurrent).toBe(0);
    expect(f.efi.options).toEqual([
      {
        number: 0,
        name: 'Boot0000',
        description: 'Windows Boot Manager',
        filePath: '\\EFI\\Microsoft\\Boot\\bootmgfw.efi',
        partitionGuid: '4f2b8c1d-93a6-4e7b-b5c2-7d1e9f0a3b64',
        bcdObject: true,
      },
      {
        number: 1,
        name: 'Boot0001',
        description: 'UEFI: PXE IPv4 Intel(R) Ethernet Connection (17) I219-LM',
        filePath: null,
        partitionGuid: null,
        bcdObject: false,
      },
    ]);
  });

  it('parses bcdedit /enum firmware into its entries, list values kept whole', () => {
    const f = facts('win11-uefi-clean');
    expect(f.bcdFirmware.map((e) => e.heading)).toEqual([
      'Firmware Boot Manager',
      'Windows Boot Manager',
      'Firmware Application (101fffff)',
    ]);
    expect(f.bcdFirmware[0]!.fields.displayorder).toEqual([
      '{bootmgr}',
      '{2f6a4f6c-9d55-11ee-8c90-806e6f6e6963}',
    ]);
    expect(f.bcdFirmware[1]!.fields.path).toEqual(['\\EFI\\Microsoft\\Boot\\bootmgfw.efi']);
  });

  it('reads Secure Boot and BitLocker on from a Windows 11 laptop', () => {
    const f = facts('win11-secure-boot-bitlocker');
    expect(f.secureBoot.enabled).toBe(true);
    expect(f.bitlocker.volumes[0]).toMatchObject({ volumeStatus: 'FullyEncrypted', protectionStatus: 'On' });
    expect(f.workDir).toMatchObject({ exists: false, probedPath: 'C:\\', writable: true });
  });

  it('reads a legacy-BIOS Windows 10: no ESP, Secure Boot unknown with the cmdlet message as the reason', () => {
    const f = facts('win10-bios-legacy');
    expect(f.firmware).toEqual({ type: 'bios', detail: 'firmware_type=Legacy' });
    expect(f.secureBoot).toEqual({
      enabled: null,
      reason: 'not supported on this platform (BIOS, or no Secure Boot)',
    });
    expect(f.esp).toBeNull();
    expect(f.espProblem).toMatch(/no partition of the EFI system partition type/);
    expect(f.workDir.partition?.guid).toBeNull();
    expect(f.warnings).toContain(
      'bcdedit /enum firmware: The boot configuration data store could not be opened.\r\nThe system cannot find the file specified.',
    );
  });

  it('takes the machine architecture from PROCESSOR_ARCHITEW6432 under a 32-bit PowerShell', () => {
    expect(facts('win10-workdir-mbr-disk').arch).toBe('x86_64');
  });

  it('reads BitLocker from manage-bde -status when the cmdlet is missing', () => {
    const f = facts('win10-workdir-mbr-disk');
    expect(f.bitlocker.source).toBe('manage-bde');
    expect(f.bitlocker.volumes.map((v) => [v.mountPoint, v.volumeStatus, v.protectionStatus])).toEqual([
      ['C:', 'FullyDecrypted', 'Off'],
      ['D:', 'FullyDecrypted', 'Off'],
    ]);
  });

  it('finds no partition GUID for a work dir on an MBR disk', () => {
    const f = facts('win10-workdir-mbr-disk');
    expect(f.workDir.partition).toMatchObject({
      diskNumber: 1,
      driveLetter: 'D',
      guid: null,
      fileSystem: 'NTFS',
    });
  });

  it('reads the one-line, ASCII-escaped JSON the probe really prints', () => {
    const data = JSON.parse(raw('win11-uefi-clean'));
    data.ComputerName = 'KÜCHE-PC';
    const escaped = JSON.stringify(data).replace(
      /[^\x00-\x7f]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
    expect(escaped).toMatch(/^[\x00-\x7f]+$/);
    expect(parseWindowsFacts(`\uFEFF${escaped}\r\n`).hostname).toBe('KÜCHE-PC');
  });

  it('accepts storage enums printed as numbers (BusType 17 is NVMe, PartitionStyle 2 is GPT)', () => {
    const data = JSON.parse(raw('win11-uefi-clean'));
    data.Disks[0].BusType = 17;
    data.Disks[0].PartitionStyle = '2';
    const f = parseWindowsFacts(JSON.stringify(data));
    expect(f.disks[0]).toMatchObject({ busType: 'NVMe', partitionStyle: 'GPT' });
  });

  it('says the probe stopped half-way when the JSON is cut short', () => {
    expect(() => parseWindowsFacts(raw('win11-uefi-clean').slice(0, 500))).toThrow(WindowsProbeParseError);
    expect(() => parseWindowsFacts(raw('win11-uefi-clean').slice(0, 500))).toThrow(/stopped half-way/);
  });

  it('names the field that does not have the expected shape', () => {
    const data = JSON.parse(raw('win11-uefi-clean'));
    data.Partitions[0].Offset = 'one megabyte';
    expect(() => parseWindowsFacts(JSON.stringify(data))).toThrow(/Partitions\.0\.Offset/);
  });

  it('says so when the probe printed nothing at all', () => {
    expect(() => parseWindowsFacts('  \r\n')).toThrow(/printed nothing/);
  });
});

describe('parseManageBdeStatus', () => {
  it('maps English states and leaves other languages unknown instead of guessing', () => {
    const text = [
      'Volume C: [OS]',
      '    Conversion Status:    Encryption in Progress',
      '    Percentage Encrypted: 41,5%',
      '    Protection Status:    Protection Off',
      '    Lock Status:          Unlocked',
      'Volume E: []',
      '    Konvertierungsstatus: Vollständig entschlüsselt',
    ].join('\r\n');
    expect(parseManageBdeStatus(text)).toEqual([
      {
        mountPoint: 'C:',
        volumeStatus: 'EncryptionInProgress',
        protectionStatus: 'Off',
        encryptionPercentage: 41.5,
        lockStatus: 'Unlocked',
      },
      {
        mountPoint: 'E:',
        volumeStatus: null,
        protectionStatus: null,
        encryptionPercentage: null,
        lockStatus: null,
      },
    ]);
  });
});

describe('parseBcdeditEnum', () => {
  it('reads the layout of a localised listing too', () => {
    const text =
      'Firmware-Start-Manager\r\n----------------------\r\nBezeichner              {fwbootmgr}\r\nAnzeigereihenfolge      {bootmgr}\r\n                        {a}\r\n';
    expect(parseBcdeditEnum(text)).toEqual([
      {
        heading: 'Firmware-Start-Manager',
        fields: { Bezeichner: ['{fwbootmgr}'], Anzeigereihenfolge: ['{bootmgr}', '{a}'] },
      },
    ]);
  });
});
