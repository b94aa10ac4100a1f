import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RawWindowsProbe } from '../../orchestrator/facts/windows.ts';
import { windowsProbeCommand, windowsProbeScript } from '../../orchestrator/platform/windows/probe.ts';
import { CMD_LINE_LIMIT, STDIN_BOOTSTRAP } from '../../orchestrator/platform/windows/ps-quote.ts';
import { checkBalanced } from '../fixtures/windows/ps-syntax.ts';

const PAYLOAD = join(import.meta.dirname, '../../remote-payload/windows');
const probe = readFileSync(join(PAYLOAD, 'probe.ps1'), 'utf8');

describe('windowsProbeScript', () => {
  it('sets the work dir first, as a quoted string, then the firmware helper and the probe', () => {
    const script = windowsProbeScript("C:\\bm's $(dir)");
    expect(script.split('\n')[0]).toBe("$WorkDir = 'C:\\bm''s $(dir)'");
    expect(script).toContain("if (-not ('BalenaMigrate.Firmware' -as [type]))");
    expect(script.endsWith(probe.replace(/\r\n/g, '\n'))).toBe(true);
  });

  it('travels on stdin behind the bootstrap, because it is longer than cmd.exe allows', () => {
    const cmd = windowsProbeCommand('C:\\balena-migrate');
    expect(cmd.stdin).toBe(windowsProbeScript('C:\\balena-migrate'));
    expect(cmd.command.length).toBeLessThanOrEqual(CMD_LINE_LIMIT);
    expect(Buffer.from(cmd.command.split(' ').at(-1)!, 'base64').toString('utf16le')).toBe(STDIN_BOOTSTRAP);
  });

  it('pairs every bracket outside strings and comments, in the probe and the firmware helper', () => {
    checkBalanced(windowsProbeScript('C:\\balena-migrate'));
  });

  it('prints every field the facts parser requires, under the same name', () => {
    const printed = new Set([...probe.matchAll(/^\s{2}([A-Za-z0-9]+)\s+=/gm)].map((m) => m[1]));
    const required = Object.entries(RawWindowsProbe.shape)
      .filter(([, schema]) => !schema.safeParse(undefined).success)
      .map(([key]) => key);
    for (const key of required) expect(printed, key).toContain(key);
  });

  it('escapes every non-ASCII character of its JSON, so no console code page can garble it', () => {
    expect(probe).toContain("[regex]::Replace($json, '[^\\u0000-\\u007F]'");
    expect(probe).toMatch(/^[\x09\x0a\x0d\x20-\x7e]*$/);
  });

  it('takes back the drive letter it gave the EFI system partition', () => {
    expect(probe).toContain('& mountvol.exe "$($letter):" /s');
    expect(probe).toContain('& mountvol.exe "$($letter):" /d');
    expect(probe.indexOf('/d 2>&1')).toBeGreaterThan(probe.indexOf('} finally {'));
  });
});
