// Private key files, parsed once per process. Decrypting an encrypted key costs about
// 0.2 s and a passphrase prompt costs the operator's patience, so a fleet of hundreds of
// hosts asks for each key's passphrase once and shares the parsed key.

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import ssh2, { type ParsedKey } from 'ssh2';

// ssh2 is CommonJS: Node's ESM loader sees only its default export.
const { utils } = ssh2;

export type LoadedKey = { path: string; key: ParsedKey } | { path: string; skipped: string };

const cache = new Map<string, Promise<LoadedKey>>();

/** How often a wrong passphrase may be re-entered before the key is given up on, as ssh does. */
const PASSPHRASE_TRIES = 3;

/**
 * Load a private key file, asking for its passphrase if it is encrypted. Concurrent callers
 * for the same file share one read and one prompt. Problems are returned as `skipped` (with
 * the reason) so the other credentials can still be tried.
 */
export function loadIdentity(
  path: string,
  askPassphrase?: (keyPath: string) => Promise<string>,
): Promise<LoadedKey> {
  const abs = resolve(path);
  let loaded = cache.get(abs);
  if (!loaded) {
    loaded = parseIdentityFile(abs, askPassphrase);
    cache.set(abs, loaded);
  }
  return loaded;
}

async function parseIdentityFile(
  path: string,
  askPassphrase?: (keyPath: string) => Promise<string>,
): Promise<LoadedKey> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    return { path, skipped: `cannot read ${path}: ${(err as Error).message}` };
  }
  let parsed = utils.parseKey(data);
  if (parsed instanceof Error && /encrypted/i.test(parsed.message)) {
    if (!askPassphrase)
      return { path, skipped: `${path} is encrypted and no passphrase prompt is available` };
    for (let i = 0; i < PASSPHRASE_TRIES; i++) {
      parsed = utils.parseKey(data, await askPassphrase(path));
      if (!(parsed instanceof Error)) break;
    }
    if (parsed instanceof Error) return { path, skipped: `wrong passphrase for ${path}` };
  }
  if (parsed instanceof Error) return { path, skipped: `cannot parse ${path}: ${parsed.message}` };
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key?.isPrivateKey()) return { path, skipped: `${path} holds no private key` };
  return { path, key };
}

/** Forget every parsed key (tests, or an operator who fixed a key file mid-run). */
export function forgetIdentities(): void {
  cache.clear();
}
