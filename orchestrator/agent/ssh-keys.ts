// agent.sshKeyFiles: the public keys that go into each device's config.json as os.sshKeys, so
// that balenaOS lets the tool in on its SSH port to verify the migration. Only public keys:
// a private key named here by mistake is refused without a byte of it being echoed.
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';

const PUBLIC_KEY =
  /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+=*( .*)?$/;

/** Every public key line of the files, in order, without duplicates. */
export function readPublicKeys(files: readonly string[]): string[] {
  const keys: string[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    if (/PRIVATE KEY-----/.test(text)) {
      throw new ConfigError(
        `agent.sshKeyFiles: ${file} is a private key`,
        { file },
        'name the public half instead (the .pub file beside it)',
      );
    }
    const numbered = text
      .split(/\r?\n/)
      .map((l, i) => ({ line: i + 1, text: l.trim() }))
      .filter((l) => l.text && !l.text.startsWith('#'));
    const lines = numbered.map((l) => l.text);
    const bad = numbered.find((l) => !PUBLIC_KEY.test(l.text));
    if (bad || lines.length === 0) {
      throw new ConfigError(
        bad
          ? `agent.sshKeyFiles: line ${bad.line} of ${file} is not an OpenSSH public key`
          : `agent.sshKeyFiles: ${file} holds no public key`,
        { file, ...(bad ? { line: bad.line, col: 1 } : {}) },
        'give files in the format of ~/.ssh/id_ed25519.pub: one "ssh-ed25519 AAAA... comment" per line',
      );
    }
    for (const l of lines) if (!keys.includes(l)) keys.push(l);
  }
  return keys;
}
