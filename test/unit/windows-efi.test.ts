import { describe, expect, it } from 'vitest';
import {
  bootVariableName,
  bytesToGuid,
  decodeLoadOption,
  decodeUint16List,
  encodeLoadOption,
  encodeLoadOptionsText,
  guidToBytes,
  normaliseGuid,
} from '../../orchestrator/facts/windows-efi.ts';

describe('GUIDs as UEFI stores them', () => {
  it('writes the first three fields little-endian and the rest as they are', () => {
    expect(guidToBytes('{C12A7328-F81F-11D2-BA4B-00A0C93EC93B}').toString('hex')).toBe(
      '28732ac11ff8d211ba4b00a0c93ec93b',
    );
  });

  it('reads the bytes back as the lowercase text Linux prints for a PARTUUID', () => {
    expect(bytesToGuid(Buffer.from('28732ac11ff8d211ba4b00a0c93ec93b', 'hex'))).toBe(
      'c12a7328-f81f-11d2-ba4b-00a0c93ec93b',
    );
    expect(normaliseGuid('{4F2B8C1D-93A6-4E7B-B5C2-7D1E9F0A3B64}')).toBe(
      '4f2b8c1d-93a6-4e7b-b5c2-7d1e9f0a3b64',
    );
  });

  it('refuses text that is not a GUID', () => {
    expect(() => guidToBytes('not-a-guid')).toThrow(/not a GUID/);
  });
});

describe('EFI_LOAD_OPTION', () => {
  const option = {
    description: 'balena-migrate stage2',
    hardDrive: {
      partitionNumber: 1,
      startLba: 2048n,
      sizeLba: 204800n,
      partitionGuid: '4f2b8c1d-93a6-4e7b-b5c2-7d1e9f0a3b64',
    },
    filePath: '\\EFI\\balena-migrate\\vmlinuz.efi',
    optionalData: encodeLoadOptionsText('initrd=\\EFI\\balena-migrate\\initramfs.gz root=PARTUUID=x'),
  };

  it('lays out attributes, path length, description, HD()/File()/End and the load options', () => {
    const b = encodeLoadOption(option);
    expect(b.readUInt32LE(0)).toBe(1);
    const descEnd = 6 + (option.description.length + 1) * 2;
    expect(b.subarray(6, descEnd).toString('utf16le')).toBe(`${option.description}\0`);
    const pathLength = b.readUInt16LE(4);
    const fileNodeLength = 4 + (option.filePath.length + 1) * 2;
    expect(pathLength).toBe(42 + fileNodeLength + 4);
    // HD(): media device path, hard drive, 42 bytes, GPT, GUID signature
    expect(b.subarray(descEnd, descEnd + 4).toString('hex')).toBe('04012a00');
    expect(b.readUInt32LE(descEnd + 4)).toBe(1);
    expect(b.readBigUInt64LE(descEnd + 8)).toBe(2048n);
    expect(b.readBigUInt64LE(descEnd + 16)).toBe(204800n);
    expect(b.subarray(descEnd + 40, descEnd + 42).toString('hex')).toBe('0202');
    // the end node, then the optional data
    expect(b.subarray(descEnd + pathLength - 4, descEnd + pathLength).toString('hex')).toBe('7fff0400');
    expect(b.subarray(descEnd + pathLength).equals(option.optionalData)).toBe(true);
  });

  it('decodes what it encodes', () => {
    const d = decodeLoadOption(encodeLoadOption(option));
    expect(d).toEqual({
      attributes: 1,
      description: option.description,
      hardDrive: option.hardDrive,
      filePath: option.filePath,
      optionalData: option.optionalData,
    });
  });

  it('refuses a value that is cut short', () => {
    const b = encodeLoadOption(option);
    expect(() => decodeLoadOption(b.subarray(0, 60))).toThrow();
  });

  it('writes load options as NUL-terminated UCS-2, the way the EFI stub reads them', () => {
    expect(encodeLoadOptionsText('a b').toString('hex')).toBe('6100200062000000');
  });
});

describe('boot variable names and lists', () => {
  it('names Boot#### with four uppercase hex digits', () => {
    expect(bootVariableName(0xa7)).toBe('Boot00A7');
    expect(() => bootVariableName(0x10000)).toThrow();
  });

  it('reads BootOrder as little-endian UINT16s', () => {
    expect(decodeUint16List(Buffer.from('030000000180', 'hex'))).toEqual([3, 0, 0x8001]);
  });
});
