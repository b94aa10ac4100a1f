// `probe HOST -o facts.json`: saves one host's facts, so plans can be made offline with
// `check --facts`.
import { writeFileSync } from 'node:fs';
import { ConfigError } from '../../errors.ts';
import { connectHost } from '../../phases/connect.ts';
import { probeHost } from '../../phases/probe.ts';
import type { CommonFlags } from '../options.ts';
import { askHidden, once } from '../prompts.ts';
import { runSettingsFrom } from '../targets.ts';
import { loadConfigWithFlags, loadTargets } from './fleet.ts';

export async function probeCommand(
  hostName: string,
  flags: CommonFlags & { output?: string },
): Promise<number> {
  const config = loadConfigWithFlags(flags);
  const inInventory = flags.inventory ? loadTargets({ ...flags, host: [] }, config) : [];
  const target = inInventory.find((t) => t.name === hostName) ?? loadTargets({ host: [hostName] }, config)[0];
  if (!target) throw new ConfigError(`unknown host ${hostName}`, { file: 'command line' });
  // probe needs no image; use placeholders so settings can be built from a partial config
  const settings = runSettingsFrom(
    { ...config, image: config.image ?? '-', configJson: config.configJson ?? '-' },
    'check',
  );
  const session = await connectHost(target, settings, {
    askPassphrase: (p) => askHidden(`passphrase for ${p}: `),
    sudoPassword: once(() => askHidden('sudo password: ')),
  });
  try {
    const { facts } = await probeHost(session, target.workDir ?? settings.workDir);
    const text = `${JSON.stringify(facts, null, 2)}\n`;
    if (flags.output) writeFileSync(flags.output, text);
    else process.stdout.write(text);
    return 0;
  } finally {
    await session.close();
  }
}
