// Which credentials to offer, in which order: the ssh-agent first (no prompt, keys never
// leave it), then each identity file. The handler records what it tried so an AuthError
// can tell the operator exactly what was offered.

import { stat } from 'node:fs/promises';
import type { AnyAuthMethod, AuthenticationType, AuthHandlerMiddleware, ParsedKey } from 'ssh2';
import { loadIdentity } from './keys.ts';

export interface Credentials {
  agentSocket?: string;
  keys: { path: string; key: ParsedKey }[];
  /** Why something the operator configured will not be offered. */
  notes: string[];
}

/** Resolve the agent socket and load (decrypt once) the identity files. */
export async function gatherCredentials(opts: {
  agentSocket?: string | null;
  identityFiles?: string[];
  askPassphrase?: (keyPath: string) => Promise<string>;
}): Promise<Credentials> {
  const notes: string[] = [];
  const socket = opts.agentSocket === undefined ? process.env.SSH_AUTH_SOCK : opts.agentSocket;
  let agentSocket: string | undefined;
  if (socket) {
    const isSocket = await stat(socket).then(
      (s) => s.isSocket(),
      () => false,
    );
    if (isSocket) agentSocket = socket;
    else notes.push(`ssh-agent socket ${socket} does not exist`);
  }
  const keys: Credentials['keys'] = [];
  for (const loaded of await Promise.all(
    (opts.identityFiles ?? []).map((p) => loadIdentity(p, opts.askPassphrase)),
  )) {
    if ('key' in loaded) keys.push(loaded);
    else notes.push(loaded.skipped);
  }
  return { agentSocket, keys, notes };
}

/** An ssh2 authHandler that walks the credentials once and then gives up. */
export function makeAuthHandler(
  username: string,
  creds: Credentials,
): { handler: AuthHandlerMiddleware; tried: () => string[] } {
  const queue: { method: AnyAuthMethod; label: string }[] = [];
  if (creds.agentSocket) {
    queue.push({
      method: { type: 'agent', username, agent: creds.agentSocket },
      label: `ssh-agent (${creds.agentSocket})`,
    });
  }
  for (const { path, key } of creds.keys) {
    queue.push({ method: { type: 'publickey', username, key }, label: `key ${path}` });
  }
  const tried: string[] = [];
  const handler: AuthHandlerMiddleware = (methodsLeft, _partialSuccess, next) => {
    while (queue.length > 0) {
      const { method, label } = queue.shift()!;
      // Agent keys are public keys on the wire; skip what the server no longer accepts.
      const wire: AuthenticationType = method.type === 'agent' ? 'publickey' : method.type;
      if (methodsLeft && !methodsLeft.includes(wire)) continue;
      tried.push(label);
      next(method);
      return;
    }
    // ssh2 ends authentication when handed `false`; its types do not list that value.
    next(false as unknown as AnyAuthMethod);
  };
  return { handler, tried: () => [...tried] };
}
