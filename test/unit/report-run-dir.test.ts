import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../orchestrator/errors.ts';
import { buildFleetReport } from '../../orchestrator/report/fleet-report.ts';
import {
  hostDirName,
  readFleetReport,
  writeFileAtomic,
  writeFleetReports,
  writeHostReport,
  writeRunMeta,
} from '../../orchestrator/report/run-dir.ts';
import { hostileFleet, hostReport, nucFacts, runFleet } from '../fixtures/reports/fleet.ts';

let runDir: string;
beforeEach(() => {
  runDir = mkdtempSync(join(tmpdir(), 'run-dir-'));
});
afterEach(() => {
  rmSync(runDir, { recursive: true, force: true });
});

const meta = {
  runId: '20250301-100000-a1b2',
  command: 'run' as const,
  mode: 'standalone',
  startedAt: '2025-03-01T10:00:00.000Z',
  endedAt: '2025-03-01T10:14:03.000Z',
  exitCode: 1,
};

/** Every file under a directory, relative to it, temp files included. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .sort();
}

describe('hostDirName', () => {
  it('keeps plain lower-case host names and addresses as they are', () => {
    expect(hostDirName('pi-3')).toBe('pi-3');
    expect(hostDirName('10.0.0.7')).toBe('10.0.0.7');
    expect(hostDirName('nuc_01.lab')).toBe('nuc_01.lab');
  });

  it.each(['../x', '..', '.', '', '/etc/passwd', 'a/../../b', 'a\\b', 'c:\\x', 'nul\u0000byte', ' spaced '])(
    'turns %j into one safe path component',
    (host) => {
      const name = hostDirName(host);
      expect(name).toMatch(/^[a-z0-9][a-z0-9._-]*$/);
      expect(name).not.toBe('..');
      expect(basename(name)).toBe(name);
      expect(resolve('/runs/hosts', name).startsWith('/runs/hosts/')).toBe(true);
    },
  );

  it('gives different hosts different directories even when they differ only in case or punctuation', () => {
    const names = ['NUC-01', 'nuc-01', 'Nuc-01', 'a/b', 'a_b', 'a b', '../x', '.._x'].map(hostDirName);
    expect(new Set(names.map((n) => n.toLowerCase())).size).toBe(names.length);
  });

  it('keeps very long names short enough for any filesystem', () => {
    expect(hostDirName('h'.repeat(300)).length).toBeLessThanOrEqual(100);
    expect(hostDirName('H'.repeat(300)).length).toBeLessThanOrEqual(100);
  });
});

describe('writeHostReport', () => {
  it('writes a host named ../x inside the hosts directory, never beside it', async () => {
    const path = await writeHostReport(runDir, hostReport({ host: '../x', outcome: 'failed' }));
    expect(dirname(dirname(path))).toBe(join(runDir, 'hosts'));
    expect(existsSync(join(runDir, 'x'))).toBe(false);
    expect(JSON.parse(readFileSync(path, 'utf8')).host).toBe('../x');
  });

  it('replaces an earlier report of the same host and leaves no temp files', async () => {
    await writeHostReport(runDir, hostReport({ host: 'pi-3', outcome: 'failed' }));
    const path = await writeHostReport(runDir, hostReport({ host: 'pi-3', outcome: 'migrated' }));
    expect(JSON.parse(readFileSync(path, 'utf8')).outcome).toBe('migrated');
    expect(filesUnder(runDir)).toEqual(['hosts/pi-3/report.json']);
  });
});

describe('writeFileAtomic', () => {
  it('leaves the old content in place and no temp file when the write fails', () => {
    const path = join(runDir, 'summary.md');
    writeFileAtomic(path, 'old\n');
    mkdirSync(join(runDir, 'blocked'));
    // A directory where the file should go makes the rename fail after the temp file is written.
    expect(() => writeFileAtomic(join(runDir, 'blocked'), 'new\n')).toThrow();
    expect(readFileSync(path, 'utf8')).toBe('old\n');
    expect(filesUnder(runDir)).toEqual(['summary.md']);
  });
});

describe('readFleetReport', () => {
  it('reads back every host report of a run with counts computed from them', async () => {
    const fleet = runFleet();
    writeRunMeta(runDir, meta);
    for (const h of fleet.hosts) await writeHostReport(runDir, h);
    const read = readFleetReport(runDir);
    expect(read.hosts).toHaveLength(12);
    expect(read.counts).toEqual(fleet.counts);
    expect(read.durationMs).toBe(14 * 60_000 + 3_000);
    expect(read.exitCode).toBe(1);
    expect(read.hosts.map((h) => h.host)).toEqual([
      'bbb-07',
      'edge-gw-4',
      'kiosk-9',
      'nuc-01',
      'nuc-02',
      'nuc-05',
      'old-pc-1',
      'pi-3',
      'pi-10',
      'pi-zero-1',
      'spare-12',
      'win-lab-2',
    ]);
    expect(read.hosts.find((h) => h.host === 'nuc-01')).toEqual(fleet.hosts.find((h) => h.host === 'nuc-01'));
  });

  it('reads hosts whose names needed a safe directory name under their real names', async () => {
    writeRunMeta(runDir, meta);
    for (const h of hostileFleet().hosts) await writeHostReport(runDir, h);
    const names = readFleetReport(runDir).hosts.map((h) => h.host);
    expect(names.sort()).toEqual(['../x', '<script>alert(1)</script>', 'fine & dandy', 'ok-host'].sort());
  });

  it('tells the operator when the directory is not a run directory', () => {
    expect(() => readFleetReport(runDir)).toThrow(ConfigError);
    expect(() => readFleetReport(runDir)).toThrow(/is not a run directory: it has no run\.json/);
  });

  it('rejects a run.json that does not describe a run', () => {
    writeFileSync(join(runDir, 'run.json'), JSON.stringify({ runId: 'x', command: 'flash' }));
    expect(() => readFleetReport(runDir)).toThrow(/run\.json does not describe a run: command/);
  });

  it('shows a host with a broken or missing report as needs-attention instead of dropping it', async () => {
    writeRunMeta(runDir, meta);
    await writeHostReport(runDir, hostReport({ host: 'pi-3', outcome: 'migrated' }));
    mkdirSync(join(runDir, 'hosts', 'torn'));
    writeFileSync(join(runDir, 'hosts', 'torn', 'report.json'), '{"host": "torn", "outc');
    mkdirSync(join(runDir, 'hosts', 'wrong'));
    writeFileSync(
      join(runDir, 'hosts', 'wrong', 'report.json'),
      JSON.stringify({ ...hostReport({ host: 'wrong', outcome: 'migrated' }), outcome: 'won' }),
    );
    mkdirSync(join(runDir, 'hosts', 'empty'));
    const fleet = readFleetReport(runDir);
    expect(fleet.counts).toEqual({ migrated: 1, 'needs-attention': 3 });
    const byName = Object.fromEntries(fleet.hosts.map((h) => [h.host, h]));
    expect(byName.torn?.error?.message).toMatch(/^hosts\/torn\/report\.json is not a valid host report: /);
    expect(byName.wrong?.error?.message).toMatch(
      /^hosts\/wrong\/report\.json is not a valid host report: outcome: /,
    );
    expect(byName.empty?.error?.message).toBe(
      'hosts/empty/report.json is missing: the run stopped before this host finished',
    );
    expect(byName.empty?.error?.nextStep).toMatch(/check the host itself/);
  });

  it('keeps a host whose facts come from another probe version, without the facts', async () => {
    writeRunMeta(runDir, meta);
    const path = await writeHostReport(
      runDir,
      hostReport({ host: 'pi-3', outcome: 'migrated', facts: nucFacts }),
    );
    const raw = JSON.parse(readFileSync(path, 'utf8'));
    raw.facts.probeVersion = 99;
    writeFileSync(path, JSON.stringify(raw));
    const host = readFleetReport(runDir).hosts[0];
    expect(host?.outcome).toBe('migrated');
    expect(host?.facts).toBeNull();
  });

  it('derives the end and the exit code of a run that never finished', async () => {
    writeRunMeta(runDir, { ...meta, endedAt: null, exitCode: null });
    await writeHostReport(
      runDir,
      hostReport({
        host: 'pi-3',
        outcome: 'migrated',
        startedAt: '2025-03-01T10:00:01.000Z',
        durationMs: 60_000,
      }),
    );
    const fleet = readFleetReport(runDir);
    expect(fleet.endedAt).toBe('2025-03-01T10:01:01.000Z');
    expect(fleet.durationMs).toBe(61_000);
    expect(fleet.exitCode).toBe(0);
  });
});

describe('writeFleetReports', () => {
  it('writes fleet.json, summary.md, report.html and junit.xml that re-render from the run dir', async () => {
    const fleet = runFleet();
    writeRunMeta(runDir, meta);
    for (const h of fleet.hosts) await writeHostReport(runDir, h);
    const paths = writeFleetReports(runDir, readFleetReport(runDir));
    expect(
      Object.values(paths)
        .map((p) => basename(p))
        .sort(),
    ).toEqual(['fleet.json', 'junit.xml', 'report.html', 'summary.md']);
    const json = JSON.parse(readFileSync(paths.json, 'utf8'));
    expect(json).toEqual(buildFleetReport(meta, fleet.hosts));
    expect(readFileSync(paths.markdown, 'utf8')).toContain('**8 of 12 hosts need a human.**');
    expect(readFileSync(paths.html, 'utf8')).toContain('data-host="win-lab-2"');
    expect(readFileSync(paths.junit, 'utf8')).toContain('tests="12"');
    expect(filesUnder(runDir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
