// The Windows probe as it travels: the work dir as a quoted PowerShell assignment, the
// firmware helper, then probe.ps1, run by powershell.exe with nothing for cmd.exe to parse.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type PowerShellCommand, powershellCommand, psQuote } from './ps-quote.ts';

const PAYLOAD_DIR = fileURLToPath(new URL('../../../remote-payload/windows/', import.meta.url));

/** A file of remote-payload/windows, read once. */
const cache = new Map<string, string>();
export function windowsPayloadFile(name: 'probe.ps1' | 'firmware.ps1' | 'transaction.ps1'): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(`${PAYLOAD_DIR}${name}`, 'utf8').replace(/\r\n/g, '\n');
    cache.set(name, text);
  }
  return text;
}

/** The whole probe script for a host whose work dir is WORKDIR (a Windows path). */
export function windowsProbeScript(workDir: string): string {
  return [`$WorkDir = ${psQuote(workDir)}`, windowsPayloadFile('firmware.ps1'), windowsProbeBody()].join(
    '\n',
  );
}

function windowsProbeBody(): string {
  return windowsPayloadFile('probe.ps1');
}

/**
 * The SSH exec command (and stdin) that runs the probe. The probe needs an elevated session:
 * an administrator's OpenSSH logon has one; the probe reports IsAdministrator either way.
 */
export function windowsProbeCommand(workDir: string): PowerShellCommand {
  return powershellCommand(windowsProbeScript(workDir));
}
