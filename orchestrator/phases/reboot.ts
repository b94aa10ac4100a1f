// Reboots the host once into stage2. The command is detached and delayed so the SSH exec
// returns cleanly before the host goes down.

import type { SshSession } from '../ssh/session.ts';

/** The boot id changes on every boot: it tells a rebooted host from one that never went down. */
export async function readBootId(session: SshSession): Promise<string> {
  const res = await session.execChecked('cat /proc/sys/kernel/random/boot_id');
  return res.stdout.trim();
}

export async function rebootHost(session: SshSession): Promise<void> {
  const cmd =
    "setsid sh -c 'sleep 2; if command -v systemctl >/dev/null 2>&1; then systemctl reboot || reboot; else reboot; fi' </dev/null >/dev/null 2>&1 &";
  await session.execChecked(cmd, { sudo: true });
}
