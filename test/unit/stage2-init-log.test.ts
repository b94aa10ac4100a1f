import { describe, expect, it } from 'vitest';
import { runInitShell } from '../fixtures/stage2/init-shell.ts';

// The init's log never carries a Wi-Fi key or a password: lines are redacted before they are
// written to RAM, a console or a disk. And its byte arithmetic goes through awk.

const initSays = (script: string, ...args: string[]) => {
  const r = runInitShell(script, args);
  if (r.status !== 0) throw new Error(`status ${r.status}: ${r.stderr}`);
  return { out: r.stdout.trim(), log: r.stderr };
};

describe('the init log', () => {
  it('redacts psk, passwords, WEP keys and API keys, and keeps the rest of the line', () => {
    const { out } = initSays(
      'redact "$1"',
      '| psk=hunter2-wifi key-mgmt=wpa-psk password: sesame wep-key0=12345 "apiKey": "k-9" ssid=home',
    );
    expect(out).toBe(
      '| psk=<redacted> key-mgmt=wpa-psk password: <redacted> wep-key0=<redacted> "apiKey": "<redacted>" ssid=home',
    );
  });

  it('writes redacted lines to the RAM log and the console', () => {
    const { out, log } = initSays('log "cp: psk=hunter2-wifi in bm-net-01.nmconnection"; cat "$LOG"');
    expect(out).toMatch(/^\[[^\]]+\] cp: psk=<redacted> in bm-net-01.nmconnection$/);
    expect(log).not.toContain('hunter2-wifi');
  });

  it('budgets RAM in KiB with the log reserve, and formats sizes for people', () => {
    expect(initSays('ram_need_kib 262144000 1400 600 67108864').out).toBe(
      String(Math.ceil((262144000 + 1400 + 600 + 1048576 + 67108864) / 1024)),
    );
    expect(initSays('ram_fits 100 100 && ram_fits 101 100 || echo short').out).toBe('short');
    expect(initSays('rate 36700160 1.00 3.50').out).toBe('35.0 MiB in 2.50 s (14.0 MiB/s)');
  });
});
