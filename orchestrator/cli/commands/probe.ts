// `probe HOST -o facts.json`: saves one host's facts, so plans can be made offline with
// `check --facts`.
import { writeFileSync } from 'node:fs';
import { ConfigError } from '../../errors.ts';
import { connectHost } from '../../phases/connect.ts';
import { hostOsOf } from '../../phases/host-os.ts';
import { probeHost } from '../../phases/probe.ts';
import { probeWindows } from '../../phases/windows-host.ts';
import { windowsWorkDir } from '../../platform/windows/host-commands.ts';
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
    const workDir = target.workDir ?? settings.workDir;
    // a Windows host answers with its own facts (what the Windows planner reads)
    const facts =
      hostOsOf(session.shell) === 'windows'
        ? await probeWindows(session, windowsWorkDir(workDir))
        : (await probeHost(session, workDir)).facts;
    const text = `${JSON.stringify(facts, null, 2)}\n`;
    if (flags.output) writeFileSync(flags.output, text);
    else process.stdout.write(text);
    return 0;
  } finally {
    await session.close();
  }
}
