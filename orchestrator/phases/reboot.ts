// Reboots the host once into stage2. The command is detached and delayed so the SSH exec
// returns cleanly before the host goes down.

import { shellQuote } from '../ssh/quote.ts';
import type { SshSession } from '../ssh/session.ts';

/** The boot id changes on every boot: it tells a rebooted host from one that never went down. */
export async function readBootId(session: SshSession): Promise<string> {
  const res = await session.execChecked('cat /proc/sys/kernel/random/boot_id');
  return res.stdout.trim();
}

/**
 * Reboots detached. With an ARGUMENT (the Raspberry Pi's `0 tryboot`) it goes to reboot(2) as
 * its argument, through systemctl or reboot; a reboot that drops it only boots the old OS.
 */
export async function rebootHost(session: SshSession, argument?: string): Promise<void> {
  const cmd = argument
    ? `setsid sh -c 'sleep 2; if command -v systemctl >/dev/null 2>&1; then systemctl reboot "$1" || reboot "$1"; else reboot "$1"; fi' sh ${shellQuote(argument)} </dev/null >/dev/null 2>&1 &`
    : "setsid sh -c 'sleep 2; if command -v systemctl >/dev/null 2>&1; then systemctl reboot || reboot; else reboot; fi' </dev/null >/dev/null 2>&1 &";
  await session.execChecked(cmd, { sudo: true });
}
