// `--download-only`: agent mode up to the cached, verified images; no run directory, no host.
import type { MigrationConfig } from '../config/migration-config.ts';
import { ConfigError } from '../errors.ts';
import { RunResources } from '../phases/resources.ts';
import type { HostTarget } from '../phases/settings.ts';
import { describeImages, resolveAgentRun } from './prepare.ts';

export async function downloadOnly(
  config: MigrationConfig,
  targets: readonly HostTarget[],
  out: { log: (message: string) => void; print: (line: string) => void },
): Promise<number> {
  if (config.mode !== 'agent') {
    throw new ConfigError(
      '--download-only needs agent mode',
      { file: config.source ?? 'command line' },
      'set `mode: agent` in balena-migrate.yml, or pass --mode agent',
    );
  }
  const run = await resolveAgentRun({ config, targets, resources: new RunResources(), log: out.log });
  for (const line of describeImages(run)) out.print(line);
  return 0;
}
