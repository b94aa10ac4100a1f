// Field schemas shared by the migration config and every inventory format, so a port or
// a working directory is checked the same way wherever it is written.
import { isIP } from 'node:net';
import { z } from 'zod';

export const Port = z
  .int({ error: 'must be a whole number from 1 to 65535' })
  .min(1, { error: 'must be a whole number from 1 to 65535' })
  .max(65535, { error: 'must be a whole number from 1 to 65535' });

export const PositiveInt = z.int({ error: 'must be a whole number' }).min(1, { error: 'must be at least 1' });
export const NonNegativeInt = z
  .int({ error: 'must be a whole number' })
  .min(0, { error: 'must not be negative' });

export const Address = z
  .string({ error: 'must be an IP address or a DNS name' })
  .refine(isValidAddress, { error: 'must be an IP address or a DNS name' });

export const User = z
  .string({ error: 'must be a user name' })
  .regex(/^[A-Za-z0-9._][A-Za-z0-9._-]*$/, { error: 'must be a user name (letters, digits, . _ -)' });

export const Become = z.enum(['sudo', 'none'], { error: 'must be sudo or none' });
export type Become = z.infer<typeof Become>;

/** A path on the operator's machine; resolution and existence checks come later. */
export const LocalPath = z.string({ error: 'must be a file path' }).min(1, { error: 'must not be empty' });

/**
 * An absolute directory on the remote host. Kept to a plain character set because it ends
 * up in shell commands and in `rm -r` on cleanup: no `..`, no spaces, never `/` itself.
 */
export const RemoteDir = z
  .string({ error: 'must be an absolute directory path' })
  .refine((dir) => dir.startsWith('/'), { error: 'must be an absolute path (starting with /)' })
  .refine((dir) => !/\s/.test(dir), { error: 'must not contain spaces or line breaks' })
  .refine((dir) => !dir.split('/').includes('..'), { error: "must not contain '..'" })
  .refine((dir) => /^[A-Za-z0-9._/+@-]+$/.test(dir), {
    error: 'may contain only letters, digits and . _ - + @ /',
  })
  .refine((dir) => dir.replace(/\/+/g, '/') !== '/', { error: 'must not be the root directory /' });

/** `/data//bm/` → `/data/bm`. Done by the loaders, not the schema, so the JSON schema keeps defaults. */
export function normaliseRemoteDir(dir: string): string {
  return dir.replace(/\/+/g, '/').replace(/(.)\/$/, '$1');
}

/** A free-form bag of operator variables (templating, notes, tags). */
export const FreeVars = z.record(z.string(), z.unknown(), { error: 'must be a mapping of name: value' });

const DNS_LABEL = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/;

/** IPv4, IPv6, or a DNS name (RFC 1123 labels; `_` tolerated as many LANs use it). */
export function isValidAddress(address: string): boolean {
  if (isIP(address)) return true;
  if (address.length === 0 || address.length > 253) return false;
  const labels = address.replace(/\.$/, '').split('.');
  // All-numeric dotted names are meant as IPv4 addresses; isIP already said they are not.
  if (labels.every((label) => /^\d+$/.test(label))) return false;
  return labels.every((label) => DNS_LABEL.test(label));
}
