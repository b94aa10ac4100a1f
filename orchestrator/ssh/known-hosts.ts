// OpenSSH known_hosts: read it, check a presented host key against it, record a new key.
// The format is OpenSSH's own (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT") so the operator can
// keep using ssh, ssh-keygen -F / -R and the same file side by side with this tool.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFile, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface KnownHostEntry {
  /** 1-based line number, for "offending key in FILE:LINE" messages. */
  line: number;
  marker: 'revoked' | 'cert-authority' | null;
  /** The hosts field as written: a pattern list or one `|1|salt|hash`. */
  hosts: string;
  /** The key type inside the key blob (authoritative over the type field). */
  keyType: string;
  key: Buffer;
}

export type HostKeyCheck =
  | { status: 'match'; fingerprint: string; line: number }
  | { status: 'unknown'; fingerprint: string }
  /** A different key (or only keys of other types) is recorded for this host. */
  | { status: 'changed'; fingerprint: string; knownFingerprints: string[]; lines: number[] }
  /** The key is listed under @revoked: never accept it. */
  | { status: 'revoked'; fingerprint: string; line: number };

/** The name OpenSSH files a host under: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** `SHA256:` + unpadded base64 of the key blob's SHA-256, exactly as `ssh-keygen -l` prints it. */
export function fingerprintSha256(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The type name at the start of an SSH wire-format public key (`ssh-ed25519`, `ssh-rsa`, ...). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return '';
  const len = key.readUInt32BE(0);
  if (len > key.length - 4) return '';
  return key.subarray(4, 4 + len).toString('latin1');
}

/** Parse known_hosts text; lines OpenSSH would skip (comments, blanks, garbage) are skipped. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (fields[0] === '' || fields[0]?.startsWith('#')) return;
    let marker: KnownHostEntry['marker'] = null;
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else return; // an unknown marker: OpenSSH ignores the line
    }
    const [hosts, , b64] = fields;
    if (!hosts || !b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return;
    const key = Buffer.from(b64, 'base64');
    const keyType = keyTypeOf(key);
    if (!keyType) return;
    entries.push({ line: i + 1, marker, hosts, keyType, key });
  });
  return entries;
}

/** Does the hosts field of an entry name this host? Handles hashes, lists, `*`/`?` and `!negation`. */
export function hostsFieldMatches(hosts: string, name: string): boolean {
  if (hosts.startsWith('|1|')) return hashedMatches(hosts, name);
  let matched = false;
  for (const raw of hosts.split(',')) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).toLowerCase();
    if (!globMatches(pattern, name)) continue;
    if (negated) return false; // a matching negation vetoes the whole line
    matched = true;
  }
  return matched;
}

function hashedMatches(field: string, name: string): boolean {
  const [, , salt, hash] = field.split('|');
  if (!salt || !hash) return false;
  const want = Buffer.from(hash, 'base64');
  const got = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

function globMatches(pattern: string, name: string): boolean {
  // Most entries are plain names: no pattern to compile (a fleet checks every entry per host).
  if (!/[*?]/.test(pattern)) return pattern === name;
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(name);
}

/** Check a presented host key against parsed entries, the way ssh with StrictHostKeyChecking does. */
export function checkHostKey(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  key: Buffer,
): HostKeyCheck {
  const name = knownHostsName(host, port);
  const fingerprint = fingerprintSha256(key);
  const mine = entries.filter((e) => e.marker !== 'cert-authority' && hostsFieldMatches(e.hosts, name));
  const revoked = mine.find((e) => e.marker === 'revoked' && e.key.equals(key));
  if (revoked) return { status: 'revoked', fingerprint, line: revoked.line };
  const plain = mine.filter((e) => e.marker === null);
  const same = plain.find((e) => e.key.equals(key));
  if (same) return { status: 'match', fingerprint, line: same.line };
  // Any other key on record for this host means "changed": the connect asks for the
  // recorded key types first, so a host offering another type has lost its old key.
  if (plain.length === 0) return { status: 'unknown', fingerprint };
  return {
    status: 'changed',
    fingerprint,
    knownFingerprints: plain.map((e) => fingerprintSha256(e.key)),
    lines: plain.map((e) => e.line),
  };
}

/** Key types recorded for a host, so the connect can ask the server for one of those first. */
export function knownKeyTypes(entries: readonly KnownHostEntry[], host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  const types = entries
    .filter((e) => e.marker === null && hostsFieldMatches(e.hosts, name))
    .map((e) => e.keyType);
  return [...new Set(types)];
}

/**
 * One known_hosts line for a host key. Hashed by default (as Debian's ssh_config does with
 * HashKnownHosts yes): the file then does not list every device address of the fleet for
 * whoever copies it, and `ssh-keygen -F/-R` still find and remove the entry.
 */
export function formatKnownHostsLine(
  host: string,
  port: number,
  key: Buffer,
  opts: { hashed?: boolean } = {},
) {
  const name = knownHostsName(host, port);
  let hosts = name;
  if (opts.hashed ?? true) {
    const salt = randomBytes(20);
    const hash = createHmac('sha1', salt).update(name).digest();
    hosts = `|1|${salt.toString('base64')}|${hash.toString('base64')}`;
  }
  return `${hosts} ${keyTypeOf(key)} ${key.toString('base64')}`;
}

/** Read and parse a known_hosts file; a missing file is an empty one. */
export async function readKnownHosts(file: string): Promise<KnownHostEntry[]> {
  let stamp: string;
  try {
    const st = await stat(file);
    stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  // Every connection of a fleet reads the same file: parse it once per version of it, not
  // once per host (a fleet's known_hosts grows with the fleet, so that was quadratic).
  const cached = parsedFiles.get(file);
  if (cached?.stamp === stamp) return cached.entries;
  const entries = readFile(file, 'utf8').then(parseKnownHosts);
  parsedFiles.set(file, { stamp, entries });
  entries.catch(() => {
    if (parsedFiles.get(file)?.entries === entries) parsedFiles.delete(file);
  });
  return entries;
}

const parsedFiles = new Map<string, { stamp: string; entries: Promise<KnownHostEntry[]> }>();

// Appends are serialised per file so that many hosts connecting at once never interleave
// lines, and a host seen twice concurrently is recorded once.
const fileLocks = new Map<string, Promise<unknown>>();

/**
 * Trust on first use: under a per-file lock, check again and append the key only if the host
 * is still unknown. Returns the check as it stood before the append (`unknown` = recorded).
 */
export async function recordHostKey(
  file: string,
  host: string,
  port: number,
  key: Buffer,
  opts: { hashed?: boolean } = {},
): Promise<HostKeyCheck> {
  const previous = fileLocks.get(file) ?? Promise.resolve();
  const run = previous.then(async () => {
    const check = checkHostKey(await readKnownHosts(file), host, port, key);
    if (check.status !== 'unknown') return check;
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    let prefix = '';
    try {
      const text = await readFile(file, 'utf8');
      if (text.length > 0 && !text.endsWith('\n')) prefix = '\n';
    } catch {}
    await appendFile(file, `${prefix}${formatKnownHostsLine(host, port, key, opts)}\n`, { mode: 0o600 });
    return check;
  });
  const settled = run.catch(() => {});
  fileLocks.set(file, settled);
  void settled.then(() => {
    if (fileLocks.get(file) === settled) fileLocks.delete(file);
  });
  return run;
}
