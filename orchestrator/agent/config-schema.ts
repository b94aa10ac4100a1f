// The `agent:` section of balena-migrate.yml: how to reach the balena backend, which fleet the
// hosts join, which balenaOS they get, and what goes into their config.json. Like the rest of
// the file every field is optional in the schema; what agent mode needs is checked once the
// flags are applied (agentConfigFrom). Secrets are never written here, only where to find them.
import { z } from 'zod';
import { LocalPath, PositiveInt } from '../config/fields.ts';

export const AGENT_DEFAULTS = {
  apiUrl: 'https://api.balena-cloud.com',
  osVersion: 'latest',
  onlineTimeoutSeconds: 600,
  cacheDir: '~/.cache/balena-migrate/images',
} as const;

function field<T extends z.ZodType>(schema: T, description: string, defaultValue?: unknown) {
  const meta = defaultValue === undefined ? { description } : { description, default: defaultValue };
  return schema.optional().meta(meta);
}

const ApiUrl = z
  .string({ error: 'must be a URL such as https://api.balena-cloud.com' })
  .regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, { error: 'must be a URL such as https://api.balena-cloud.com' });

/** An environment variable name as a shell would accept it. */
const EnvName = z
  .string({ error: 'must be the name of an environment variable' })
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
    error: 'must be the name of an environment variable, e.g. BALENA_API_KEY',
  });

/** A fleet slug (`myorg/myfleet`) or its numeric id. */
const Fleet = z.union([PositiveInt, z.string().regex(/^\S+$/)], {
  error: "must be a fleet slug such as 'myorg/myfleet', or a fleet id",
});

/** `latest`, an exact balenaOS version, or a semver range. */
const OsVersion = z
  .string({ error: "must be 'latest', a balenaOS version such as 6.0.13+rev1, or a range such as ^6.0.0" })
  .regex(/^\S+$/, {
    error: "must be 'latest', a balenaOS version such as 6.0.13+rev1, or a range such as ^6.0.0",
  });

const DeviceTypeSlug = z
  .string({ error: 'must be a balena device type slug, e.g. genericx86-64-ext' })
  .regex(/^[a-z0-9][a-z0-9-]*$/, { error: 'must be a balena device type slug, e.g. genericx86-64-ext' });

export const AgentSettings = z.strictObject({
  apiUrl: field(ApiUrl, 'the balena API (balenaCloud, or an openBalena server)', AGENT_DEFAULTS.apiUrl),
  apiKeyFile: field(LocalPath, 'file that holds the balena API key (never write the key itself here)'),
  apiKeyEnv: field(EnvName, 'environment variable that holds the balena API key'),
  fleet: field(Fleet, "the fleet the devices join: slug ('myorg/myfleet') or id"),
  deviceType: field(
    DeviceTypeSlug,
    "device type of the hosts (default: the fleet's); a host var balenaDeviceType overrides it",
  ),
  osVersion: field(
    OsVersion,
    "balenaOS version: 'latest', an exact version, or a semver range",
    AGENT_DEFAULTS.osVersion,
  ),
  developmentMode: field(
    z.boolean({ error: 'must be true or false' }),
    'generate development-mode config.json',
  ),
  wifiSsid: field(z.string({ error: 'must be text' }).min(1), 'Wi-Fi network the devices join'),
  wifiKeyFile: field(LocalPath, 'file that holds the Wi-Fi passphrase'),
  appUpdatePollInterval: field(PositiveInt, 'how often (minutes) the devices check for updates'),
  onlineTimeoutSeconds: field(
    PositiveInt,
    'after balenaOS answers on the host, how long to wait for the backend to see the device online',
    AGENT_DEFAULTS.onlineTimeoutSeconds,
  ),
  cacheDir: field(LocalPath, 'where downloaded balenaOS images are kept', AGENT_DEFAULTS.cacheDir),
  sshKeyFiles: field(
    z.array(LocalPath, { error: 'must be a list of public key files' }),
    "public SSH keys (.pub files) put into each device's config.json as os.sshKeys: they let this tool (and you) into balenaOS on port 22222 to verify the migration",
  ),
  hostDownload: field(
    z.boolean({ error: 'must be true or false' }),
    "hosts that reach the backend download the image themselves (curl or wget, no credentials: balenaCloud serves public device types' images to anyone), verified by sha256; the laptop pushes it when that fails",
    false,
  ),
});

export type AgentSettingsInput = z.input<typeof AgentSettings>;

/** Keys whose value would be a secret in clear text: each names where the secret goes instead. */
export const LITERAL_SECRET_KEYS: Readonly<Record<string, string>> = {
  apiKey:
    'put the API key in a file (agent.apiKeyFile, mode 0600) or an environment variable (agent.apiKeyEnv)',
  apiToken:
    'put the API key in a file (agent.apiKeyFile, mode 0600) or an environment variable (agent.apiKeyEnv)',
  token:
    'put the API key in a file (agent.apiKeyFile, mode 0600) or an environment variable (agent.apiKeyEnv)',
  wifiKey: 'put the Wi-Fi passphrase in a file and name it with agent.wifiKeyFile',
  wifiPassword: 'put the Wi-Fi passphrase in a file and name it with agent.wifiKeyFile',
};

export const AGENT_HINTS: Readonly<Record<string, string>> = {
  fleet: "write the fleet's slug as shown in the dashboard, e.g. fleet: myorg/myfleet",
  apiKeyEnv: 'write the variable name, e.g. apiKeyEnv: BALENA_API_KEY',
  osVersion: "write 'latest', an exact version such as 6.0.13+rev1, or a range such as ^6.0.0",
  deviceType: 'write a device type slug, e.g. genericx86-64-ext',
  apiUrl: 'write the API URL, e.g. https://api.balena-cloud.com',
};
