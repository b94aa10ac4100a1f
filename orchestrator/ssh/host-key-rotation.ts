// OpenSSH's sshd announces all of its host keys right after login (`hostkeys-00@openssh.com`,
// for clients that rotate known_hosts: UpdateHostKeys). ssh2 answers every announcement by
// asking the server to prove it holds each key: one signature per host key on the device (an
// RSA-3072 signature costs a Raspberry Pi tens of milliseconds) and one verification here, for
// keys nothing uses: our known_hosts policy is pinning plus trust-on-first-use (known-hosts.ts).
// So the announcement is taken note of and dropped, as OpenSSH's own client does by default
// for hosts it knows by a single key.
import type { Client } from 'ssh2';

const ANNOUNCEMENT = 'hostkeys-00@openssh.com';

type GlobalRequestHandler = (packet: unknown, name: string, wantReply: boolean, data: unknown) => void;

interface Ssh2Internals {
  _protocol?: {
    _handlers?: { GLOBAL_REQUEST?: GlobalRequestHandler };
    requestSuccess?: () => void;
  };
}

/**
 * Call right after `client.connect()` (which creates the protocol handlers). Returns whether
 * it took effect: ssh2's handler table is internal, and a release that moves it only makes
 * logins a little slower, never wrong.
 */
export function declineHostKeyProofs(client: Client): boolean {
  const proto = (client as unknown as Ssh2Internals)._protocol;
  const handlers = proto?._handlers;
  const original = handlers?.GLOBAL_REQUEST;
  if (!proto || !handlers || typeof original !== 'function') return false;
  handlers.GLOBAL_REQUEST = (packet, name, wantReply, data) => {
    if (name !== ANNOUNCEMENT) return original(packet, name, wantReply, data);
    if (wantReply) proto.requestSuccess?.();
  };
  return true;
}
