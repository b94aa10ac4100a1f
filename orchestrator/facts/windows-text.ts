// Text that Windows tools print for people, read on the laptop where it can be tested:
// `bcdedit /enum firmware` and `manage-bde -status`. Both are localised on non-English
// Windows; the parsers read the layout, and only manage-bde's English values are mapped.
import type { BitLockerState } from './windows.ts';

export interface BcdEntry {
  /** `Firmware Boot Manager`, `Windows Boot Manager`, `Firmware Application (101fffff)` */
  heading: string;
  /** `identifier` → [`{bootmgr}`]; list values (displayorder) keep every line */
  fields: Record<string, string[]>;
}

/**
 * `bcdedit /enum ...` output: blocks of a heading, a line of dashes, and `name  value` lines
 * where a line starting with blanks continues the previous name's list.
 */
export function parseBcdeditEnum(text: string): BcdEntry[] {
  const lines = text.replace(/\r/g, '').split('\n');
  const entries: BcdEntry[] = [];
  let current: BcdEntry | null = null;
  let lastKey: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') {
      current = null;
      lastKey = null;
      continue;
    }
    if (/^-{3,}\s*$/.test(lines[i + 1] ?? '') && !/^\s/.test(line)) {
      current = { heading: line.trim(), fields: {} };
      entries.push(current);
      lastKey = null;
      i++;
      continue;
    }
    if (!current) continue;
    const cont = /^\s+(\S.*)$/.exec(line);
    if (cont && lastKey) {
      current.fields[lastKey]!.push(cont[1]!.trim());
      continue;
    }
    const kv = /^(\S+)\s+(.*)$/.exec(line);
    if (kv) {
      lastKey = kv[1]!;
      current.fields[lastKey] = [...(current.fields[lastKey] ?? []), kv[2]!.trim()];
    } else {
      lastKey = line.trim();
      current.fields[lastKey] ??= [];
    }
  }
  return entries;
}

const CONVERSION: Record<string, string> = {
  'fully decrypted': 'FullyDecrypted',
  'fully encrypted': 'FullyEncrypted',
  'used space only encrypted': 'FullyEncrypted',
  'encryption in progress': 'EncryptionInProgress',
  'decryption in progress': 'DecryptionInProgress',
  'encryption paused': 'EncryptionPaused',
  'decryption paused': 'DecryptionPaused',
};

/**
 * `manage-bde -status`: a `Volume C: [Label]` line per volume, then `Name:  value` lines.
 * Values that are not English stay null (unknown) rather than guessed.
 */
export function parseManageBdeStatus(text: string): BitLockerState[] {
  const out: BitLockerState[] = [];
  let cur: BitLockerState | null = null;
  for (const raw of text.replace(/\r/g, '').split('\n')) {
    const vol = /^\s*Volume\s+([A-Za-z]:|\\\\\?\\Volume\{[^}]+\}\\?)/.exec(raw);
    if (vol) {
      cur = {
        mountPoint: vol[1]!.toUpperCase().startsWith('\\\\?\\') ? vol[1]! : vol[1]!.toUpperCase(),
        volumeStatus: null,
        protectionStatus: null,
        encryptionPercentage: null,
        lockStatus: null,
      };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const kv = /^\s+([^:]+?):\s+(.*?)\s*$/.exec(raw);
    if (!kv) continue;
    const key = kv[1]!.toLowerCase();
    const value = kv[2]!;
    if (key === 'conversion status') cur.volumeStatus = CONVERSION[value.toLowerCase()] ?? null;
    else if (key === 'percentage encrypted') {
      const n = Number.parseFloat(value.replace(',', '.'));
      cur.encryptionPercentage = Number.isFinite(n) ? n : null;
    } else if (key === 'protection status') {
      cur.protectionStatus = /^protection on/i.test(value)
        ? 'On'
        : /^protection off/i.test(value)
          ? 'Off'
          : null;
    } else if (key === 'lock status') {
      cur.lockStatus = /^unlocked/i.test(value) ? 'Unlocked' : /^locked/i.test(value) ? 'Locked' : null;
    }
  }
  return out;
}
