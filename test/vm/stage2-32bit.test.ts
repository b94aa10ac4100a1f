import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INIT_SCRIPT } from '../fixtures/stage2/init-shell.ts';
import { ensureArmhfBusybox } from '../helpers/busybox-armhf.ts';

// Stage2's byte arithmetic as a 32-bit board runs it: Debian's armhf busybox-static (a 32-bit
// ARM binary, `long` is 32 bits) under qemu-arm, with sizes past 2 GiB and 4 GiB. The init never
// lets the shell's $(( )) touch a byte count; awk (doubles) and string comparison do.

let busybox: string;
const dir = mkdtempSync(join(tmpdir(), 'stage2-32bit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  busybox = await ensureArmhfBusybox();
}, 300_000);

/** SCRIPT run by the armhf busybox sh after sourcing the init as a library. */
function arm(script: string, args: string[] = []): string {
  const r = spawnSync(
    'qemu-arm',
    [busybox, 'sh', '-c', `. "${INIT_SCRIPT}" || exit 99\n${script}`, 'stage2-test', ...args],
    {
      env: { PATH: '/usr/bin:/bin', STAGE2_LIB: '1', STAGE2_RUN: dir },
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  if (r.status !== 0) throw new Error(`armhf busybox exited ${r.status}: ${r.stderr}`);
  return r.stdout.trim();
}

describe('stage2 on a 32-bit board', () => {
  it('runs a real 32-bit ARM busybox', () => {
    const elf = readFileSync(busybox);
    expect(elf[4]).toBe(1); // ELFCLASS32
    expect(elf.readUInt16LE(18)).toBe(40); // EM_ARM
    expect(arm('uname -m')).toMatch(/^armv7/);
  });

  it('adds, compares and formats byte counts past 2 GiB and 4 GiB exactly', () => {
    expect(arm('calc "3000000000 + 3000000000"')).toBe('6000000000');
    expect(arm('calc "7814037168 * 512"')).toBe('4000787030016');
    expect(arm('calc "4294967295 * 4294967296 + 4294967295"')).not.toMatch(/-/);
    expect(arm('kib_of 5000000001')).toBe('4882813');
    expect(arm('mib 3221225472')).toBe('3072.0 MiB');
    expect(arm('num_ge 4294967296 4294967295 && echo yes')).toBe('yes');
    expect(arm('num_ge 2147483648 2147483649 || echo no')).toBe('no');
  });

  it('budgets RAM in KiB: 512 MB takes a 1.5 GB image that compresses to 250 MB, and 2.5 GB images are compared right', () => {
    // 250 MiB gzip + config + no network files + log + 64 MiB margin, against a 512 MB board's MemAvailable
    const need = arm('ram_need_kib 262144000 1400 0 67108864');
    expect(need).toBe(String(Math.ceil((262144000 + 1400 + 0 + 1048576 + 67108864) / 1024)));
    expect(arm(`ram_fits ${need} 430000 && echo fits`)).toBe('fits');
    const big = arm('ram_need_kib 2500000000 1400 4096 67108864');
    expect(Number(big)).toBe(Math.ceil((2500000000 + 1400 + 4096 + 1048576 + 67108864) / 1024));
    expect(arm(`ram_fits ${big} 3000000 && echo fits`)).toBe('fits');
    expect(arm(`ram_fits ${big} 2400000 || echo short`)).toBe('short');
  });

  it('reads sizes and partition starts beyond 4 GiB from files and tables', () => {
    const sparse = join(dir, 'sparse.img');
    execFileSync('truncate', ['-s', '3T', sparse]);
    execFileSync('sfdisk', ['-q', sparse], {
      input: 'label: gpt\nstart=2048, size=2048, type=U\nstart=5000000000, size=2048, type=L\n',
    });
    expect(arm('stat -c %s "$1"', [sparse])).toBe(String(3 * 1024 ** 4));
    expect(arm('partition_starts "$1"', [sparse]).split('\n')).toEqual(['1 2048', '2 5000000000']);
  });

  it('counts a read-back of more than 4 GiB with dd iflag=count_bytes', () => {
    // 4 GiB + 512 bytes: 256 whole 16 MiB records and one partial one of 512 bytes
    const out = arm('dd if=/dev/zero of=/dev/null bs=16M iflag=count_bytes count=4294967808 2>&1');
    expect(out).toMatch(/^256\+1 records in$/m);
    const bytes = arm(
      'dd if=/dev/zero bs=16M iflag=count_bytes count=4294967808 2>/dev/null | tail -c 1000 | wc -c',
    );
    expect(bytes).toBe('1000');
  }, 120_000);
});
