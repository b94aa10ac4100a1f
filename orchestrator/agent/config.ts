// Loading the `agent:` section: a literal secret is refused before the schema sees it (so no
// error message can echo it), local paths are resolved against the config file, and once the
// flags are applied agentConfigFrom checks that agent mode has what it needs.
import { existsSync } from 'node:fs';
import { requireFile, resolveLocalPath, type Where } from '../config/local-files.ts';
import type { Path } from '../config/validate.ts';
import { ConfigError } from '../errors.ts';
import { AGENT_DEFAULTS, type AgentSettingsInput, LITERAL_SECRET_KEYS } from './config-schema.ts';

/** The agent settings after loading: paths absolute, defaults filled in. */
export interface AgentSettingsResolved {
  apiUrl: string;
  apiKeyFile: string | undefined;
  apiKeyEnv: string | undefined;
  fleet: string | number | undefined;
  deviceType: string | undefined;
  osVersion: string;
  developmentMode: boolean | undefined;
  wifiSsid: string | undefined;
  wifiKeyFile: string | undefined;
  appUpdatePollInterval: number | undefined;
  onlineTimeoutSeconds: number;
  cacheDir: string;
  sshKeyFiles: string[];
  hostDownload: boolean;
}

/** What agent mode runs with: the fleet and one source of the API key are known. */
export interface AgentConfig extends AgentSettingsResolved {
  fleet: string | number;
  apiKeySource: { kind: 'file'; path: string } | { kind: 'env'; name: string };
}

export function defaultAgentSettings(): AgentSettingsResolved {
  return {
    apiUrl: AGENT_DEFAULTS.apiUrl,
    apiKeyFile: undefined,
    apiKeyEnv: undefined,
    fleet: undefined,
    deviceType: undefined,
    osVersion: AGENT_DEFAULTS.osVersion,
    developmentMode: undefined,
    wifiSsid: undefined,
    wifiKeyFile: undefined,
    appUpdatePollInterval: undefined,
    onlineTimeoutSeconds: AGENT_DEFAULTS.onlineTimeoutSeconds,
    cacheDir: resolveLocalPath(AGENT_DEFAULTS.cacheDir, process.cwd()),
    sshKeyFiles: [],
    hostDownload: false,
  };
}

/**
 * Refuses `agent: { apiKey: ... }` and the like at the key's line and column. Runs on the raw
 * YAML value, before the schema, because schema errors quote the offending value.
 */
export function rejectLiteralSecrets(raw: unknown, locateKey: (mapPath: Path, key: string) => Where): void {
  if (!isMapping(raw)) return;
  const agent = raw.agent;
  if (!isMapping(agent)) return;
  for (const key of Object.keys(agent)) {
    const fix = LITERAL_SECRET_KEYS[key];
    if (fix === undefined) continue;
    throw new ConfigError(
      `agent.${key}: a secret must not be written in clear text in the migration config`,
      locateKey(['agent'], key),
      fix,
    );
  }
}

/** A balena API key: a long run of letters and digits, no path separators or dots. */
export function looksLikeApiKey(text: string): boolean {
  return /^[A-Za-z0-9_-]{24,}$/.test(text) && !/[/.]/.test(text);
}

/** Makes the agent's local paths absolute and checks the files that must exist. */
export function resolveAgentPaths(
  given: AgentSettingsInput,
  baseDir: string,
  locate: (at: Path) => Where,
): AgentSettingsInput {
  const out: AgentSettingsInput = { ...given };
  for (const key of ['apiKeyFile', 'wifiKeyFile'] as const) {
    const value = out[key];
    if (value === undefined) continue;
    const absolute = resolveLocalPath(value, baseDir);
    if (looksLikeApiKey(value) && !existsSync(absolute)) {
      // requireFile would print the path, i.e. the secret itself: say nothing of the value.
      throw new ConfigError(
        `agent.${key} looks like a secret itself, not the name of a file`,
        locate(['agent', key]),
        key === 'apiKeyFile'
          ? 'put the API key in a file (mode 0600) and give that file name, or use agent.apiKeyEnv'
          : 'put the passphrase in a file (mode 0600) and give that file name',
      );
    }
    requireFile(
      absolute,
      locate(['agent', key]),
      key === 'apiKeyFile' ? 'API key file' : 'Wi-Fi key file',
      baseDir,
    );
    out[key] = absolute;
  }
  if (out.cacheDir !== undefined) out.cacheDir = resolveLocalPath(out.cacheDir, baseDir);
  if (out.sshKeyFiles !== undefined) {
    out.sshKeyFiles = out.sshKeyFiles.map((file, i) => {
      const absolute = resolveLocalPath(file, baseDir);
      requireFile(absolute, locate(['agent', 'sshKeyFiles', i]), 'SSH public key file', baseDir);
      return absolute;
    });
  }
  return out;
}

/** Settings given (file or flags) on top of what was there. */
export function mergeAgentSettings(
  base: AgentSettingsResolved | undefined,
  given: AgentSettingsInput | undefined,
): AgentSettingsResolved | undefined {
  if (given === undefined) return base;
  const start = base ?? defaultAgentSettings();
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  return { ...start, ...defined } as AgentSettingsResolved;
}

/**
 * What agent mode needs, checked after the flags: a fleet and exactly one place for the key.
 * `source` is the config file, for the error's location.
 */
export function agentConfigFrom(
  settings: AgentSettingsResolved | undefined,
  source: string | undefined,
): AgentConfig {
  const where = { file: source ?? 'command line' };
  if (!settings || settings.fleet === undefined) {
    throw new ConfigError(
      'mode agent needs the fleet the devices join',
      where,
      'add `agent: { fleet: myorg/myfleet }` to balena-migrate.yml, or pass --fleet SLUG',
    );
  }
  if (settings.apiKeyFile !== undefined && settings.apiKeyEnv !== undefined) {
    throw new ConfigError(
      'agent.apiKeyFile and agent.apiKeyEnv are both set; the API key must come from one place',
      where,
      'keep one of them',
    );
  }
  const apiKeySource =
    settings.apiKeyFile !== undefined
      ? ({ kind: 'file', path: settings.apiKeyFile } as const)
      : settings.apiKeyEnv !== undefined
        ? ({ kind: 'env', name: settings.apiKeyEnv } as const)
        : undefined;
  if (!apiKeySource) {
    throw new ConfigError(
      'mode agent needs a balena API key, from a file or an environment variable',
      where,
      'set agent.apiKeyFile (a file with the key, mode 0600) or agent.apiKeyEnv (e.g. BALENA_API_KEY), or pass --api-key-file / --api-key-env',
    );
  }
  return { ...settings, fleet: settings.fleet, apiKeySource };
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
