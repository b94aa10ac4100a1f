// The balena API key comes from a file or an environment variable, never from a command line,
// the inventory or the config in clear text. Once read it lives in memory only; every message
// that leaves the agent passes through redact() so an echo of the key cannot reach a log.
import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import type { AgentConfig } from './config.ts';

export interface ApiKey {
  /** the key itself: handed to the SDK, nowhere else */
  readonly value: string;
  /** where it came from, safe to print */
  readonly origin: string;
}

export function readApiKey(
  source: AgentConfig['apiKeySource'],
  env: NodeJS.ProcessEnv = process.env,
): ApiKey {
  if (source.kind === 'env') {
    const value = env[source.name]?.trim();
    if (!value) {
      throw new ConfigError(
        `the environment variable ${source.name} (agent.apiKeyEnv) is not set or empty`,
        { file: 'environment' },
        `export ${source.name} with a balena API key (dashboard: Preferences → Access tokens), or use agent.apiKeyFile`,
      );
    }
    return { value, origin: `environment variable ${source.name}` };
  }
  let text: string;
  try {
    text = readFileSync(source.path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `cannot read the API key file ${source.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      { file: source.path },
      'check agent.apiKeyFile or --api-key-file',
    );
  }
  const value = text.trim();
  if (!value || /\s/.test(value)) {
    throw new ConfigError(
      `the API key file ${source.path} must hold just the key, on one line`,
      { file: source.path },
      'write the key alone into the file (no name, no quotes)',
    );
  }
  if (statSync(source.path).mode & 0o004) {
    throw new ConfigError(
      `the API key file ${source.path} can be read by every user on this machine`,
      { file: source.path },
      `chmod 600 ${source.path}`,
    );
  }
  return { value, origin: source.path };
}

/** Replaces every occurrence of each secret in `text`; secrets shorter than 8 are left alone. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 8) out = out.split(secret).join('[redacted]');
  }
  return out;
}
