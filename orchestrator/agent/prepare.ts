// Agent mode before any host is touched, in two steps:
//   resolveAgentRun: the API key, the fleet, each host's device type (checked against the
//     fleet), the balenaOS version, and the image for every device type in the run,
//     downloaded once into the cache, verified and measured. Nothing here changes the backend;
//     any problem stops the run with exit code 2 before a run directory exists.
//   provisionAgentHosts: for `run`, each host is pre-registered as a device of the fleet (or
//     matched to the balenaUuid in its host vars) and gets its own config.json from the
//     backend, written 0600 into the run directory. `check` registers nothing.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationConfig } from '../config/migration-config.ts';
import { ConfigError } from '../errors.ts';
import { loadJournal } from '../fleet/journal.ts';
import type { RunResources } from '../phases/resources.ts';
import type { HostTarget } from '../phases/settings.ts';
import { hostDirName } from '../report/run-dir.ts';
import { readApiKey } from './api-key.ts';
import {
  BackendError,
  BalenaBackend,
  type ConfigOptions,
  type DeviceTypeInfo,
  type FleetInfo,
} from './backend.ts';
import { type AgentConfig, agentConfigFrom } from './config.ts';
import { deviceConfigJson, writeSecretJson } from './device-config.ts';
import type { HostAgent } from './host-agent.ts';
import { type CachedImage, ensureImage } from './image-cache.ts';
import { readPublicKeys } from './ssh-keys.ts';
import { confirmDeviceOnline } from './verify-online.ts';
import { type AgentWifi, agentWifi } from './wifi.ts';

export interface AgentRunInput {
  config: MigrationConfig;
  /** the selected hosts; may be empty with --download-only */
  targets: readonly HostTarget[];
  resources: RunResources;
  log: (message: string) => void;
  env?: NodeJS.ProcessEnv;
  /** download tuning, for tests */
  download?: { attempts?: number; stallMs?: number };
}

/** One host's place in the backend, decided before the run. */
export interface HostDevicePlan {
  host: string;
  deviceType: string;
  /** balenaUuid from the host vars: an existing device to reuse */
  existingUuid: string | null;
}

export interface AgentRun {
  agent: AgentConfig;
  backend: BalenaBackend;
  fleet: FleetInfo;
  /** the exact balenaOS version per device type */
  versions: Map<string, string>;
  /** the cached, verified image per device type */
  images: Map<string, CachedImage>;
  hosts: HostDevicePlan[];
  /** agent.wifiSsid/wifiKeyFile, read and checked: a keyfile for every host (agent/wifi.ts) */
  wifi: AgentWifi | null;
}

/** Host vars agent mode reads. */
export const UUID_VAR = 'balenaUuid';
export const DEVICE_TYPE_VAR = 'balenaDeviceType';

export async function resolveAgentRun(input: AgentRunInput): Promise<AgentRun> {
  const { config, targets, log } = input;
  const agent = agentConfigFrom(config.agent, config.source);
  const wifi = agentWifi(agent, config.source);
  for (const t of targets) rejectSecretVars(t);
  const hosts0 = targets.map((t) => hostVars(t));
  const duplicate = firstDuplicate(hosts0.flatMap((h) => (h.existingUuid ? [h.existingUuid] : [])));
  if (duplicate) {
    throw new ConfigError(
      `two hosts have the same ${UUID_VAR} ${duplicate}`,
      { file: 'inventory' },
      'give every host its own device (or none, to register a new one)',
    );
  }

  const key = readApiKey(agent.apiKeySource, input.env);
  const backend = await BalenaBackend.connect(agent.apiUrl, key);
  const fleet = await backend.fleet(agent.fleet);
  log(`fleet ${fleet.slug} (id ${fleet.id}, device type ${fleet.deviceType})`);

  const hosts: HostDevicePlan[] = [];
  for (const h of hosts0) {
    let deviceType = h.deviceType ?? agent.deviceType ?? fleet.deviceType;
    if (h.existingUuid) {
      const device = await backend.device(h.existingUuid);
      if (device.fleetId !== fleet.id) {
        throw new BackendError(
          `host ${h.host}: device ${device.uuid} is not in fleet ${fleet.slug}`,
          { file: agent.apiUrl },
          `move the device to ${fleet.slug} in the dashboard, or remove ${UUID_VAR} from the host to register a new device`,
        );
      }
      if (device.deviceType && h.deviceType && device.deviceType !== h.deviceType) {
        throw new ConfigError(
          `host ${h.host}: ${DEVICE_TYPE_VAR} is ${h.deviceType} but device ${device.uuid} is a ${device.deviceType}`,
          { file: 'inventory' },
          `remove one of ${DEVICE_TYPE_VAR} and ${UUID_VAR}, or make them agree`,
        );
      }
      deviceType = device.deviceType ?? deviceType;
    }
    hosts.push({ host: h.host, deviceType, existingUuid: h.existingUuid });
  }

  const deviceTypes = new Set(hosts.map((h) => h.deviceType));
  if (deviceTypes.size === 0) deviceTypes.add(agent.deviceType ?? fleet.deviceType);
  const versions = new Map<string, string>();
  for (const slug of deviceTypes) {
    const dt = await backend.deviceType(slug);
    requireSupported(backend, fleet, dt, agent.apiUrl);
    const { version, available } = await backend.resolveOsVersion(dt.slug, agent.osVersion);
    if (!version) {
      throw new BackendError(
        available.length === 0
          ? `the backend has no balenaOS release for ${dt.slug}`
          : `no balenaOS release for ${dt.slug} matches '${agent.osVersion}' (available: ${available.slice(0, 8).join(', ')}${available.length > 8 ? ', ...' : ''})`,
        { file: agent.apiUrl },
        "set agent.osVersion to 'latest', one of the versions listed, or a range such as ^6.0.0",
      );
    }
    versions.set(slug, version);
  }

  const images = new Map<string, CachedImage>();
  for (const [deviceType, version] of versions) {
    let shown = -1;
    const image = await ensureImage({
      source: backend,
      cacheDir: agent.cacheDir,
      deviceType,
      version,
      ...input.download,
      log,
      onProgress: (done, total) => {
        if (!total) return;
        const tenth = Math.floor((done / total) * 10);
        if (tenth > shown) {
          shown = tenth;
          log(`downloading balenaOS ${version} for ${deviceType}: ${tenth * 10}% of ${total} bytes`);
        }
      },
    });
    input.resources.adoptImage(image.info);
    images.set(deviceType, image);
  }
  return { agent, backend, fleet, versions, images, hosts, wifi };
}

export interface ProvisionOptions {
  command: 'check' | 'run';
  runDir: string;
  /** --resume: hosts already migrated are left alone; earlier registrations are reused */
  resume: boolean;
  log: (message: string) => void;
  /** online wait tuning, for tests */
  onlinePollMs?: number;
}

export interface ProvisionedHost {
  target: HostTarget;
  agent: HostAgent;
}

/** Where provisioning remembers which device each host became (for --resume). */
export function devicesFile(runDir: string): string {
  return join(runDir, 'agent', 'devices.json');
}

/** Registers (run) or previews (check) every host's device and writes its config.json. */
export async function provisionAgentHosts(
  run: AgentRun,
  targets: readonly HostTarget[],
  opts: ProvisionOptions,
): Promise<Map<string, ProvisionedHost>> {
  const { agent, backend, fleet } = run;
  const out = new Map<string, ProvisionedHost>();
  const known = readDevices(opts.runDir);
  const journal = opts.resume ? loadJournal(opts.runDir) : null;
  const wifi = run.wifi;
  const sshKeys = readPublicKeys(agent.sshKeyFiles);
  const fleetConfigs = new Map<string, Promise<Record<string, unknown>>>();
  const fleetConfig = (deviceType: string) => {
    let p = fleetConfigs.get(deviceType);
    if (!p) {
      const options: ConfigOptions = {
        version: run.versions.get(deviceType)!,
        deviceType,
        // the same network the device gets as a keyfile (agent/wifi.ts)
        network: wifi ? 'wifi' : 'ethernet',
        ...(wifi ? { wifiSsid: wifi.ssid, ...(wifi.passphrase ? { wifiKey: wifi.passphrase } : {}) } : {}),
        ...(agent.appUpdatePollInterval ? { appUpdatePollInterval: agent.appUpdatePollInterval } : {}),
        ...(agent.developmentMode !== undefined ? { developmentMode: agent.developmentMode } : {}),
      };
      p = backend.fleetConfig(fleet.id, options);
      fleetConfigs.set(deviceType, p);
    }
    return p;
  };

  for (const target of targets) {
    const plan = run.hosts.find((h) => h.host === target.name);
    if (!plan) continue;
    if (journal?.hosts.get(target.name)?.outcome === 'migrated') continue;
    const version = run.versions.get(plan.deviceType)!;
    const image = run.images.get(plan.deviceType)!;
    const configPath = join(opts.runDir, 'agent', 'config', `${hostDirName(target.name)}.config.json`);

    let uuid: string | null = plan.existingUuid ?? known[target.name]?.uuid ?? null;
    if (opts.command === 'check') {
      // check changes nothing, in the backend either: a stand-in of the same shape to plan with.
      writeSecretJson(configPath, {
        applicationId: fleet.id,
        deviceType: plan.deviceType,
        ...(uuid ? { uuid } : {}),
        note: 'preview: `run` registers the device and writes the config.json the backend generates',
      });
    } else {
      let identity: { id: number; uuid: string; deviceApiKey: string };
      if (uuid) {
        const device = await backend.device(uuid);
        identity = { id: device.id, uuid: device.uuid, deviceApiKey: await backend.deviceKey(device.uuid) };
        opts.log(`${target.name}: device ${device.uuid} (existing), new device key issued`);
      } else {
        identity = await backend.register(fleet.id, plan.deviceType);
        await backend.rename(identity.uuid, target.name).catch((err: Error) => {
          opts.log(`${target.name}: could not name the device after the host (${err.message})`);
        });
        opts.log(`${target.name}: registered as device ${identity.uuid} in ${fleet.slug}`);
      }
      uuid = identity.uuid;
      known[target.name] = { uuid };
      writeSecretJson(devicesFile(opts.runDir), known);
      writeSecretJson(
        configPath,
        deviceConfigJson(await fleetConfig(plan.deviceType), identity, new Date(), sshKeys),
      );
    }

    const device = {
      fleet: fleet.slug,
      deviceType: plan.deviceType,
      osVersion: version,
      uuid,
      dashboardUrl: uuid ? backend.dashboardUrl(uuid) : null,
      online: null,
    };
    const deviceUuid = uuid;
    out.set(target.name, {
      target: { ...target, image: image.path, configJson: configPath },
      agent: {
        deviceType: plan.deviceType,
        device,
        ...(agent.hostDownload
          ? {
              imageDownload: {
                url: backend.imageUrl(plan.deviceType, version),
                sha256: image.info.fileSha256,
                sizeBytes: image.info.fileSizeBytes,
              },
            }
          : {}),
        confirmOnline: async (signal, log) => {
          if (!deviceUuid || !device.dashboardUrl) {
            return {
              ok: false,
              wait: { online: false, afterMs: 0, polls: 0, lastError: null },
              error: {
                class: 'DeviceNotOnline',
                message:
                  'no device of the fleet was registered for this host, so the backend cannot confirm it',
                nextStep: 'find the device in the fleet in the dashboard, or re-run this host with `run`',
              },
            };
          }
          log(
            `waiting up to ${agent.onlineTimeoutSeconds}s for the balena backend to see ${deviceUuid} online`,
          );
          const verdict = await confirmDeviceOnline({
            isOnline: () => backend.isOnline(deviceUuid),
            timeoutMs: agent.onlineTimeoutSeconds * 1000,
            ...(opts.onlinePollMs !== undefined ? { pollMs: opts.onlinePollMs } : {}),
            signal,
            device: { uuid: deviceUuid, dashboardUrl: device.dashboardUrl },
          });
          if (verdict.ok) log(`the balena backend sees ${deviceUuid} online`);
          return verdict;
        },
      },
    });
  }
  return out;
}

/** Lines for --download-only: what is cached where. */
export function describeImages(run: AgentRun): string[] {
  return [...run.images.values()].map(
    (i) =>
      `${i.deviceType} balenaOS ${i.version}: ${i.path} (${i.info.fileSizeBytes} bytes, sha256 ${i.info.fileSha256}${i.downloaded ? ', downloaded now' : ', from the cache'})`,
  );
}

function requireSupported(
  backend: BalenaBackend,
  fleet: FleetInfo,
  dt: DeviceTypeInfo,
  apiUrl: string,
): void {
  if (backend.supports(fleet, dt)) return;
  throw new BackendError(
    `fleet ${fleet.slug} (${fleet.deviceType}, ${fleet.cpuArch}) does not support device type ${dt.slug} (${dt.cpuArch})`,
    { file: apiUrl },
    `use a fleet whose device type runs on ${dt.cpuArch}, or set ${DEVICE_TYPE_VAR} / agent.deviceType to a device type the fleet supports`,
  );
}

function hostVars(t: HostTarget): {
  host: string;
  deviceType: string | undefined;
  existingUuid: string | null;
} {
  const vars = t.vars ?? {};
  const uuid = vars[UUID_VAR];
  const deviceType = vars[DEVICE_TYPE_VAR];
  if (uuid !== undefined && (typeof uuid !== 'string' || !/^[0-9a-f]{7,62}$/.test(uuid))) {
    throw new ConfigError(
      `host ${t.name}: ${UUID_VAR} must be a device UUID (lowercase hex, from the dashboard)`,
      { file: 'inventory' },
      `write the device's full UUID, e.g. ${UUID_VAR}: 0123456789abcdef0123456789abcdef`,
    );
  }
  if (
    deviceType !== undefined &&
    (typeof deviceType !== 'string' || !/^[a-z0-9][a-z0-9-]*$/.test(deviceType))
  ) {
    throw new ConfigError(
      `host ${t.name}: ${DEVICE_TYPE_VAR} must be a device type slug`,
      { file: 'inventory' },
      `write a slug such as ${DEVICE_TYPE_VAR}: genericx86-64-ext`,
    );
  }
  return { host: t.name, deviceType, existingUuid: (uuid as string | undefined) ?? null };
}

/** An API key in the inventory would be in clear text: refused, without echoing it. */
function rejectSecretVars(t: HostTarget): void {
  for (const name of Object.keys(t.vars ?? {})) {
    if (/api.?key|token/i.test(name)) {
      throw new ConfigError(
        `host ${t.name}: the inventory must not hold a balena API key (vars.${name})`,
        { file: 'inventory' },
        'remove it; give the key with agent.apiKeyFile or agent.apiKeyEnv in balena-migrate.yml',
      );
    }
  }
}

function readDevices(runDir: string): Record<string, { uuid: string }> {
  const path = devicesFile(runDir);
  if (!existsSync(path)) return {};
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, { uuid: string }>;
  } catch {
    return {};
  }
}

function firstDuplicate(values: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const v of values) {
    if (seen.has(v)) return v;
    seen.add(v);
  }
  return undefined;
}
