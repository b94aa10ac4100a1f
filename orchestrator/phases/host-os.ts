// Which pipeline a connected host goes through, from the shell that answered the first
// command (ssh/host-shell.ts): sh → the Linux pipeline (run-host.ts), cmd.exe or PowerShell →
// the Windows pipeline (windows-host.ts). Also the one OS-specific thing the shared verify
// step needs: the boot id of the old OS.
import { parseWindowsBootId, windowsBootIdCommand } from '../platform/windows/host-commands.ts';
import type { HostShell } from '../ssh/host-shell.ts';
import type { SshSession } from '../ssh/session.ts';

export type HostOs = 'linux' | 'windows';

export function hostOsOf(shell: HostShell): HostOs {
  return shell === 'posix' ? 'linux' : 'windows';
}

/** Something that changes on every boot: Linux's boot_id, Windows' last boot time. Null if unreadable. */
export async function readBootIdOf(session: Pick<SshSession, 'shell' | 'exec'>): Promise<string | null> {
  if (hostOsOf(session.shell) === 'linux') {
    const r = await session.exec('cat /proc/sys/kernel/random/boot_id');
    return r.exitCode === 0 && r.stdout.trim() ? r.stdout.trim() : null;
  }
  const c = windowsBootIdCommand();
  const r = await session.exec(c.command, c.stdin === undefined ? {} : { stdin: c.stdin });
  return r.exitCode === 0 ? parseWindowsBootId(r.stdout) : null;
}
