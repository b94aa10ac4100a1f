import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { escapeXml, junitVerdict, renderJunit } from '../../orchestrator/report/junit.ts';
import { checkFleet, fleetOf, hostileFleet, hostReport, runFleet } from '../fixtures/reports/fleet.ts';
import { checkXmlWellFormed } from '../fixtures/reports/xml-check.ts';

const XMLLINT = ['/usr/bin/xmllint', '/bin/xmllint'].find((p) => existsSync(p));

/** Runs xmllint --noout when it is installed; the built-in check always runs. */
function assertWellFormed(xml: string): void {
  expect(checkXmlWellFormed(xml)).toBe('testsuites');
  if (!XMLLINT) return;
  const dir = mkdtempSync(join(tmpdir(), 'junit-'));
  try {
    const file = join(dir, 'junit.xml');
    writeFileSync(file, xml);
    execFileSync(XMLLINT, ['--noout', file], { stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const testcases = (xml: string) =>
  [
    ...xml.matchAll(
      /<testcase name="([^"]*)" classname="([^"]*)" time="([^"]*)"(\/>|>([\s\S]*?)<\/testcase>)/g,
    ),
  ].map((m) => ({ name: m[1], classname: m[2], time: m[3], body: m[5] ?? '' }));

describe('renderJunit', () => {
  const xml = renderJunit(runFleet());

  it('is well-formed XML for a run, a check and hosts with hostile names and logs', () => {
    for (const fleet of [runFleet(), checkFleet(), hostileFleet(), fleetOf([])])
      assertWellFormed(renderJunit(fleet));
  });

  it('has one testsuite for the command with the totals CI systems read', () => {
    expect(xml.match(/<testsuite /g)).toHaveLength(1);
    expect(xml).toContain(
      '<testsuite name="balena-migrate run" tests="12" failures="5" errors="0" skipped="3" time="843.000" timestamp="2025-03-01T10:00:00.000Z">',
    );
    expect(xml).toContain('<property name="runId" value="20250301-100000-a1b2"/>');
  });

  it('has one testcase per host, classed by device type (or unknown), timed in seconds', () => {
    const cases = testcases(xml);
    expect(cases).toHaveLength(12);
    expect(cases.find((c) => c.name === 'pi-3')).toMatchObject({
      classname: 'raspberrypi4-64',
      time: '402.000',
    });
    expect(cases.find((c) => c.name === 'edge-gw-4')).toMatchObject({ classname: 'unknown', time: '20.000' });
    expect(cases.find((c) => c.name === 'spare-12')).toMatchObject({ time: '0.000' });
  });

  it('fails failed, needs-attention, unreachable and reverted hosts with the next step as the message', () => {
    const cases = testcases(xml);
    const failed = cases.filter((c) => c.body.includes('<failure'));
    expect(failed.map((c) => c.name).sort()).toEqual([
      'bbb-07',
      'edge-gw-4',
      'kiosk-9',
      'nuc-05',
      'win-lab-2',
    ]);
    const bbb = cases.find((c) => c.name === 'bbb-07')?.body ?? '';
    expect(bbb).toContain(
      '<failure message="re-upload the image (it was corrupted on the way), then re-run; the host is on its old OS" type="reverted">',
    );
    expect(bbb).toContain('error: Stage2RevertedError: stage2 stopped before writing: image hash mismatch');
    expect(bbb).toContain('  verify: FAILED in 3m10s (the old OS came back after stage2)');
    expect(bbb).toMatch(/<system-out>stage2: \[00\] step 0 ok\n/);
  });

  it('skips refused hosts with their reasons and not-started hosts with why they were not reached', () => {
    const cases = testcases(xml);
    expect(cases.find((c) => c.name === 'pi-zero-1')?.body).toContain(
      '<skipped message="refused: armv6l (Raspberry Pi Zero) is not a device type this tool can migrate"/>',
    );
    expect(cases.find((c) => c.name === 'spare-12')?.body).toContain(
      '<skipped message="not started: wave 4 was not started: 3 hosts failed in wave 3 (budget 2)"/>',
    );
  });

  it('passes migrated and ready hosts', () => {
    const nuc = testcases(xml).find((c) => c.name === 'nuc-01')?.body ?? '';
    expect(nuc).not.toMatch(/<failure|<skipped/);
    expect(testcases(xml).find((c) => c.name === 'nuc-02')?.body).toBe('');
    expect(junitVerdict(hostReport({ host: 'a', outcome: 'ready' }))).toEqual({ kind: 'passed' });
  });

  it('escapes host names, messages and logs and drops characters XML cannot carry', () => {
    const out = renderJunit(hostileFleet());
    expect(out).toContain(
      '<testcase name="&lt;script&gt;alert(1)&lt;/script&gt;" classname="&lt;b&gt;bold&lt;/b&gt;"',
    );
    expect(out).toContain('&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;');
    expect(out).toContain(']]&gt; &amp; &lt;!-- --&gt; &quot;quoted&quot;');
    expect(out).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/);
    expect(out).toContain('<testcase name="fine &amp; dandy"');
  });

  it('escapes XML metacharacters and removes lone surrogates', () => {
    expect(escapeXml(`<a href="x">&'\u0001\ud800`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
    expect(escapeXml('emoji \ud83d\ude00 stays')).toBe('emoji \ud83d\ude00 stays');
  });

  it('puts hosts of another command in a testsuite of their own', () => {
    const fleet = runFleet();
    fleet.hosts.push(hostReport({ host: 'probe-only', outcome: 'ready', command: 'check' }));
    const out = renderJunit(fleet);
    assertWellFormed(out);
    expect(out.match(/<testsuite /g)).toHaveLength(2);
    expect(out).toMatch(/<testsuite name="balena-migrate check" tests="1" failures="0"/);
  });
});

describe('the XML well-formedness check used above', () => {
  it.each([
    ['an unclosed element', '<a><b></a>'],
    ['a bare ampersand', '<a>x & y</a>'],
    ['a raw less-than in an attribute', '<a b="<"/>'],
    ['two roots', '<a/><b/>'],
    ['a duplicate attribute', '<a b="1" b="2"/>'],
    ['a control character', '<a>\u0001</a>'],
  ])('rejects %s', (_what, bad) => {
    expect(() => checkXmlWellFormed(bad)).toThrow(/not well-formed/);
  });
});
