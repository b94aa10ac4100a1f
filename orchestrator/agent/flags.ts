// Agent mode's command-line flags; each maps onto a key of the `agent:` section, and a flag
// wins over the file. There is deliberately no flag for the API key itself: a command line
// is visible to every user of the machine (ps, /proc/PID/cmdline).
import type { Command } from 'commander';
import { AGENT_DEFAULTS, type AgentSettingsInput } from './config-schema.ts';

export interface AgentFlags {
  fleet?: string;
  apiUrl?: string;
  apiKeyFile?: string;
  apiKeyEnv?: string;
  osVersion?: string;
  deviceType?: string;
  onlineTimeout?: string;
  cacheDir?: string;
  downloadOnly?: boolean;
  hostDownload?: boolean;
}

export function addAgentFlags(cmd: Command): Command {
  return cmd
    .option('--fleet <slug|id>', 'agent mode: the fleet the devices join')
    .option('--api-url <url>', `agent mode: the balena API (default ${AGENT_DEFAULTS.apiUrl})`)
    .option('--api-key-file <file>', 'agent mode: file that holds the balena API key')
    .option('--api-key-env <name>', 'agent mode: environment variable that holds the balena API key')
    .option(
      '--os-version <version>',
      `agent mode: 'latest', an exact balenaOS version, or a range (default ${AGENT_DEFAULTS.osVersion})`,
    )
    .option('--device-type <slug>', "agent mode: the hosts' device type (default: the fleet's)")
    .option(
      '--online-timeout <seconds>',
      `agent mode: how long the backend has to see a device online (default ${AGENT_DEFAULTS.onlineTimeoutSeconds})`,
    )
    .option(
      '--cache-dir <dir>',
      `agent mode: where downloaded balenaOS images are kept (default ${AGENT_DEFAULTS.cacheDir})`,
    )
    .option('--download-only', 'agent mode: download and verify the images, touch no host')
    .option(
      '--host-download',
      'agent mode: hosts that reach the backend download the image themselves (verified; pushed when that fails; default off)',
    );
}

/** The agent flags as a partial `agent:` section, validated by the same schema as the file. */
export function agentOverridesFromFlags(f: AgentFlags): AgentSettingsInput | undefined {
  const o: AgentSettingsInput = {};
  if (f.fleet !== undefined) o.fleet = /^\d+$/.test(f.fleet) ? Number(f.fleet) : f.fleet;
  if (f.apiUrl !== undefined) o.apiUrl = f.apiUrl;
  if (f.apiKeyFile !== undefined) o.apiKeyFile = f.apiKeyFile;
  if (f.apiKeyEnv !== undefined) o.apiKeyEnv = f.apiKeyEnv;
  if (f.osVersion !== undefined) o.osVersion = f.osVersion;
  if (f.deviceType !== undefined) o.deviceType = f.deviceType;
  if (f.onlineTimeout !== undefined) {
    const n = Number(f.onlineTimeout);
    // A non-number is left for the schema to reject, with the flag named.
    o.onlineTimeoutSeconds = Number.isFinite(n) ? n : (f.onlineTimeout as unknown as number);
  }
  if (f.cacheDir !== undefined) o.cacheDir = f.cacheDir;
  if (f.hostDownload) o.hostDownload = true;
  return Object.keys(o).length ? o : undefined;
}
