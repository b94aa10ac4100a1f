// Opens SSH sessions to a host: to its current OS (through its jump hosts, if any), and
// afterwards to balenaOS' own port.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isHandshakeDrop, retryWithJitter, withHandshakeSlot } from '../fleet/handshake-limit.ts';
import { type ConnectOptions, SshSession } from '../ssh/session.ts';
import type { HostTarget, JumpHop, RunSettings } from './settings.ts';

export interface Prompts {
  askPassphrase?: (keyPath: string) => Promise<string>;
  sudoPassword?: () => Promise<string>;
}

/**
 * sshd sheds unauthenticated connections past MaxStartups: hold at most a few handshakes per
 * destination at once, and try a dropped handshake again after a jittered wait.
 */
function openSession(opts: ConnectOptions): Promise<SshSession> {
  const destination = `${opts.host}:${opts.port}`;
  return retryWithJitter(() => withHandshakeSlot(destination, () => SshSession.connect(opts)), {
    attempts: 4,
    baseMs: 500,
    isRetryable: (err) => isHandshakeDrop(err) || isHandshakeDrop((err as { cause?: unknown }).cause),
  });
}

type Endpoint = Pick<JumpHop, 'address' | 'port' | 'user' | 'identityFile'>;

/** What OpenSSH offers when nothing is configured: the user's default keys that exist. */
function defaultIdentityFiles(): string[] {
  const dir = join(homedir(), '.ssh');
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => join(dir, n)).filter((p) => existsSync(p));
}

export function connectOptions(target: Endpoint, settings: RunSettings, prompts: Prompts): ConnectOptions {
  const configured = [...(target.identityFile ? [target.identityFile] : []), ...settings.ssh.identityFiles];
  const identityFiles = configured.length ? configured : defaultIdentityFiles();
  return {
    host: target.address,
    port: target.port,
    username: target.user,
    identityFiles,
    agentSocket: settings.ssh.useAgent ? (process.env.SSH_AUTH_SOCK ?? null) : null,
    knownHostsFile: settings.ssh.knownHostsFile,
    acceptNewHostKeys: settings.ssh.acceptNewHostKeys,
    ...(prompts.askPassphrase ? { askPassphrase: prompts.askPassphrase } : {}),
    ...(prompts.sudoPassword ? { sudoPassword: prompts.sudoPassword } : {}),
    readyTimeoutMs: settings.ssh.connectTimeoutSeconds * 1000,
    keepaliveIntervalMs: settings.ssh.keepaliveSeconds * 1000,
    keepaliveCountMax: 3,
  };
}

/**
 * Connects through every jump host in turn (each hop's host key verified like any host's)
 * and returns the session to the last one, plus the hops to close with it.
 */
async function viaJumps(
  hops: JumpHop[],
  final: ConnectOptions,
  settings: RunSettings,
  prompts: Prompts,
): Promise<SshSession> {
  const chain: SshSession[] = [];
  try {
    let sock: ConnectOptions['sock'];
    for (const hop of hops) {
      const session = await openSession({
        ...connectOptions(hop, settings, prompts),
        ...(sock ? { sock } : {}),
      });
      chain.push(session);
      sock = undefined;
      const next = hops[chain.length] ?? { address: final.host, port: final.port };
      sock = await session.forwardOut(next.address, next.port);
    }
    const session = await openSession({ ...final, ...(sock ? { sock } : {}) });
    if (chain.length) {
      // Closing the host's session closes the hops under it too.
      const close = session.close.bind(session);
      session.close = async () => {
        await close();
        for (const hop of chain.reverse()) await hop.close().catch(() => {});
      };
    }
    return session;
  } catch (err) {
    for (const hop of chain.reverse()) await hop.close().catch(() => {});
    throw err;
  }
}

export function connectHost(
  target: HostTarget,
  settings: RunSettings,
  prompts: Prompts,
): Promise<SshSession> {
  const opts = connectOptions(
    { ...target, identityFile: target.identityFile ?? undefined },
    settings,
    prompts,
  );
  return target.jump?.length ? viaJumps(target.jump, opts, settings, prompts) : openSession(opts);
}

/**
 * balenaOS generates a new host key on first boot, so it cannot be known in advance: it is
 * trusted on first use for this port only and recorded, and a later change is refused.
 */
export function connectBalena(
  target: HostTarget,
  settings: RunSettings,
  prompts: Prompts,
): Promise<SshSession> {
  const opts: ConnectOptions = {
    ...connectOptions({ ...target, identityFile: target.identityFile ?? undefined }, settings, prompts),
    port: settings.verify.balenaPort,
    username: settings.verify.balenaUser,
    acceptNewHostKeys: true,
    readyTimeoutMs: 10_000,
  };
  return target.jump?.length ? viaJumps(target.jump, opts, settings, prompts) : openSession(opts);
}
