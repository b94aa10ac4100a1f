// Host key verification for one connection: known_hosts is checked on every connect,
// unknown keys are refused unless trust-on-first-use is on, and a changed or revoked key
// is always refused with a message that says what to do.

import type { ServerHostKeyAlgorithm } from 'ssh2';
import { ConfigError, HostKeyError } from '../errors.ts';
import {
  checkHostKey,
  type HostKeyCheck,
  knownHostsName,
  knownKeyTypes,
  readKnownHosts,
  recordHostKey,
} from './known-hosts.ts';

export interface HostKeyPolicy {
  host: string;
  port: number;
  knownHostsFile: string;
  acceptNewHostKeys: boolean;
  /** Record new keys hashed (default) or as plain host names. */
  hashKnownHosts: boolean;
}

/**
 * An ssh2 hostVerifier, in the callback form on purpose: ssh2 treats a verifier that
 * returns a value (an async function returns a Promise) as a synchronous answer, and a
 * Promise is truthy, so every host would pass. `rejection()` says why a key was refused.
 */
export function makeHostVerifier(policy: HostKeyPolicy): {
  verify: (key: Buffer, answer: (ok: boolean) => void) => void;
  rejection: () => Error | undefined;
} {
  let rejection: Error | undefined;
  const verify = (key: Buffer, answer: (ok: boolean) => void): void => {
    decide(policy, key).then(
      (err) => {
        rejection = err;
        answer(err === undefined);
      },
      (err: unknown) => {
        rejection = err instanceof Error ? err : new Error(String(err));
        answer(false);
      },
    );
  };
  return { verify, rejection: () => rejection };
}

async function decide(policy: HostKeyPolicy, key: Buffer): Promise<Error | undefined> {
  let check: HostKeyCheck;
  try {
    check = checkHostKey(await readKnownHosts(policy.knownHostsFile), policy.host, policy.port, key);
    if (check.status === 'unknown' && policy.acceptNewHostKeys) {
      // Re-checked under a lock: a concurrent connect may have recorded a key meanwhile.
      check = await recordHostKey(policy.knownHostsFile, policy.host, policy.port, key, {
        hashed: policy.hashKnownHosts,
      });
      if (check.status === 'unknown') return undefined;
    }
  } catch (err) {
    return new ConfigError(
      `cannot use known_hosts file ${policy.knownHostsFile}: ${(err as Error).message}`,
      { file: policy.knownHostsFile },
      'make the file readable and its directory writable, or point --known-hosts at another file',
    );
  }
  return check.status === 'match' ? undefined : hostKeyError(policy, check);
}

function hostKeyError(
  policy: HostKeyPolicy,
  check: Exclude<HostKeyCheck, { status: 'match' }>,
): HostKeyError {
  const where = `${policy.host}:${policy.port}`;
  const file = policy.knownHostsFile;
  const name = knownHostsName(policy.host, policy.port);
  switch (check.status) {
    case 'unknown':
      return new HostKeyError(
        `host key of ${where} is not in ${file} (it presented ${check.fingerprint}). ` +
          `Compare the fingerprint with the one on the device (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), ` +
          `then rerun with --accept-new-host-keys to record it.`,
        'unknown',
        check.fingerprint,
      );
    case 'changed':
      return new HostKeyError(
        `HOST KEY OF ${where} HAS CHANGED: it presented ${check.fingerprint}, but ${file} ` +
          `line ${check.lines.join(', ')} records ${check.knownFingerprints.join(', ')}. ` +
          `Someone may be intercepting the connection, or the device was reinstalled. Only if you know ` +
          `why it changed, remove the old key with: ssh-keygen -R '${name}' -f ${file} ` +
          `and rerun with --accept-new-host-keys.`,
        'changed',
        check.fingerprint,
      );
    case 'revoked':
      return new HostKeyError(
        `host key of ${where} (${check.fingerprint}) is marked @revoked in ${file} line ${check.line}; ` +
          `refusing to connect. The device needs a new host key before it can be migrated.`,
        'changed',
        check.fingerprint,
      );
  }
}

/** ssh2 host key algorithms per known_hosts key type. */
const ALGORITHMS_FOR_TYPE: Record<string, ServerHostKeyAlgorithm[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'ssh-dss': ['ssh-dss'],
};

/**
 * Ask the server for a key of a type we already have on record, as ssh does; otherwise a
 * host known by its RSA key would show its ed25519 key and look "unknown" or "changed".
 */
export async function hostKeyAlgorithmPreference(
  file: string,
  host: string,
  port: number,
): Promise<Record<'remove' | 'prepend' | 'append', ServerHostKeyAlgorithm[]> | undefined> {
  const types = knownKeyTypes(await readKnownHosts(file).catch(() => []), host, port);
  const algos = types.flatMap((t) => ALGORITHMS_FOR_TYPE[t] ?? []);
  if (algos.length === 0) return undefined;
  // Key order matters to ssh2: first remove them from the default list, then put them first.
  return { remove: algos, prepend: algos, append: [] };
}
