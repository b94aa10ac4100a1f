// The --help of every flag says what README's options table says: the image formats and
// each default. An operator reads one or the other; they must not disagree.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { addAgentFlags } from '../../orchestrator/agent/flags.ts';
import { addFleetFlags, addMigrationFlags, addTargetFlags } from '../../orchestrator/cli/options.ts';
import { REPO_ROOT } from '../helpers/fleet-hosts.ts';

const program = addAgentFlags(addFleetFlags(addMigrationFlags(addTargetFlags(new Command('t')))));
const helpOf = (flag: string) => program.options.find((o) => o.long === flag)?.description;

/** README's options table: flag -> meaning, for the rows with a flag. */
function readmeOptions(): Map<string, string> {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('### Options'), readme.indexOf('### Exit codes'));
  const rows = new Map<string, string>();
  for (const line of table.split('\n')) {
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    const flag = /--[a-z0-9-]+/.exec(cells[1] ?? '')?.[0];
    if (flag && cells[3]) rows.set(flag, cells[3]);
  }
  return rows;
}

/** The default a README meaning names: `(default X)`, `` `X` (default) `` or `` (`X`, default) ``. */
function readmeDefault(meaning: string): string | null {
  const m =
    /\(default:? ([^;,)]+)/.exec(meaning) ??
    /`([^`]+)`[^`]*?\(default\)/.exec(meaning) ??
    /\(`([^`]+)`, default\)/.exec(meaning);
  return m ? m[1]!.replaceAll('`', '').trim() : null;
}

describe('the help of the command-line flags', () => {
  const rows = readmeOptions();

  it('covers the flags of the README table that these commands take', () => {
    expect(rows.size).toBeGreaterThan(25);
    const ours = [...rows.keys()].filter((flag) => helpOf(flag) !== undefined);
    expect(ours.length).toBeGreaterThan(20);
  });

  it('names every image format the README names for --image, .zip included', () => {
    const formats = rows
      .get('--image')!
      .match(/`\.[a-z.]+`/g)!
      .map((f) => f.replaceAll('`', ''));
    expect(formats).toEqual(['.img', '.img.gz', '.img.xz', '.zip']);
    for (const format of formats) expect(helpOf('--image')).toContain(format);
  });

  it('states the same default as the README for every flag that has one', () => {
    const mismatches: string[] = [];
    for (const [flag, meaning] of rows) {
      const help = helpOf(flag);
      const wanted = readmeDefault(meaning);
      if (help === undefined || wanted === null) continue;
      if (!help.replaceAll('`', '').includes(wanted))
        mismatches.push(`${flag}: README default ${wanted}; help: ${help}`);
    }
    expect(mismatches).toEqual([]);
  });

  it('says the verify timeout waits for the old OS too', () => {
    expect(helpOf('--verify-timeout')).toMatch(/balenaOS or the old OS/);
  });
});
