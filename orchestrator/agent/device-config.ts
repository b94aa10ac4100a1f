// Each host's own config.json: the fleet's config.json as the backend generates it for the
// device type and balenaOS version, made into one device's by adding the identity the backend
// gave it at registration. The fleet's provisioning key is dropped: a pre-registered device
// authenticates with its own key and needs no power to register others.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface DeviceIdentity {
  id: number;
  uuid: string;
  deviceApiKey: string;
}

export function deviceConfigJson(
  fleetConfig: Readonly<Record<string, unknown>>,
  device: DeviceIdentity,
  registeredAt: Date = new Date(),
  sshKeys: readonly string[] = [],
): Record<string, unknown> {
  const { apiKey: _provisioningKey, ...rest } = fleetConfig;
  // agent.sshKeyFiles join whatever os.sshKeys the backend put there (balenaOS reads os.sshKeys)
  const os = (rest.os ?? {}) as Record<string, unknown>;
  const had = Array.isArray(os.sshKeys) ? (os.sshKeys as string[]) : [];
  const keys = [...had, ...sshKeys.filter((k) => !had.includes(k))];
  return {
    ...rest,
    ...(keys.length ? { os: { ...os, sshKeys: keys } } : {}),
    uuid: device.uuid,
    deviceId: device.id,
    deviceApiKey: device.deviceApiKey,
    registered_at: Math.floor(registeredAt.getTime() / 1000),
  };
}

/** Writes a secret file readable by its owner only, in a directory only its owner can enter. */
export function writeSecretJson(path: string, value: unknown): void {
  writeSecretText(path, `${JSON.stringify(value, null, 2)}\n`);
}

export function writeSecretText(path: string, data: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  chmodSync(dirname(path), 0o700);
  writeFileSync(path, data, { mode: 0o600 });
  // An existing file keeps its mode through writeFileSync: set it again.
  chmodSync(path, 0o600);
}
