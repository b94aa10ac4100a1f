// junit.xml: the fleet as a test report, so CI systems (Jenkins, GitLab, GitHub checks)
// show one test case per host.
//
// How outcomes map:
// - migrated, ready: passed.
// - failed, needs-attention, unreachable, reverted: <failure>, message = the next step, so a
//   CI dashboard shows what to do; the body carries the error and the phases.
// - refused: <skipped>. A refusal is the tool deciding, on purpose and before touching
//   anything, that a host must not be migrated; it is not a malfunction to be fixed in the
//   tool or the run. Counting it as skipped keeps it visible (with its reasons as the
//   message) without mixing it up with hosts that broke. The process exit code still
//   says "not every host migrated".
// - not-started: <skipped>: the host was never attempted, so nothing passed or failed.
import { formatDuration, nextStepFor, oneLine, safeMultiline, sortHostsProblemsFirst } from './format.ts';
import type { FleetReport, HostReport } from './host-report.ts';

/** Characters XML 1.0 forbids outright (most C0 controls, lone surrogates, U+FFFE/FFFF). */
const XML_INVALID =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const XML_ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

/** Escapes text for XML element content and attribute values; drops what XML cannot carry. */
export function escapeXml(text: string): string {
  return text.replace(XML_INVALID, '').replace(/[&<>"']/g, (c) => XML_ENTITIES[c] ?? c);
}

/** An attribute value: escaped, with line breaks and tabs kept as character references. */
function attr(text: string): string {
  return escapeXml(text).replace(/\n/g, '&#10;').replace(/\r/g, '&#13;').replace(/\t/g, '&#9;');
}

function seconds(ms: number | null): string {
  return ((ms ?? 0) / 1000).toFixed(3);
}

type Verdict =
  | { kind: 'passed' }
  | { kind: 'failure'; message: string }
  | { kind: 'skipped'; message: string };

/** What a host counts as in JUnit terms (see the table at the top of this file). */
export function junitVerdict(host: HostReport): Verdict {
  switch (host.outcome) {
    case 'migrated':
    case 'ready':
      return { kind: 'passed' };
    case 'refused':
      return {
        kind: 'skipped',
        message: `refused: ${host.refusalReasons.length > 0 ? host.refusalReasons.join('; ') : (host.error?.message ?? 'no reason recorded')}`,
      };
    case 'not-started':
      return {
        kind: 'skipped',
        message: `not started${host.error ? `: ${host.error.message}` : ''}`,
      };
    default:
      return { kind: 'failure', message: nextStepFor(host) };
  }
}

/**
 * Renders the fleet as JUnit XML: one testsuite per command (a run directory normally holds
 * one), one testcase per host, problems first.
 */
export function renderJunit(fleet: FleetReport): string {
  const hosts = sortHostsProblemsFirst(fleet.hosts);
  const commands = [...new Set([fleet.command, ...hosts.map((x) => x.command)])];
  const suites = commands
    .map((command) => ({ command, hosts: hosts.filter((x) => x.command === command) }))
    .filter((suite, i) => i === 0 || suite.hosts.length > 0);
  const all = tally(hosts);

  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(`<testsuites name="balena-migrate" ${countAttrs(all, fleet.durationMs)}>`);
  for (const suite of suites) {
    const name = `balena-migrate ${suite.command}`;
    // The fleet's time belongs to its own command; other suites sum their hosts.
    const time =
      suite.command === fleet.command
        ? fleet.durationMs
        : suite.hosts.reduce((sum, x) => sum + (x.durationMs ?? 0), 0);
    out.push(
      `  <testsuite name="${attr(name)}" ${countAttrs(tally(suite.hosts), time)} timestamp="${attr(fleet.startedAt)}">`,
    );
    out.push('    <properties>');
    for (const [key, value] of [
      ['runId', fleet.runId],
      ['command', suite.command],
      ['mode', fleet.mode],
      ['exitCode', String(fleet.exitCode)],
    ] as const) {
      out.push(`      <property name="${key}" value="${attr(value)}"/>`);
    }
    out.push('    </properties>');
    for (const host of suite.hosts) out.push(renderTestcase(host));
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return `${out.join('\n')}\n`;
}

interface Tally {
  tests: number;
  failures: number;
  skipped: number;
}

function tally(hosts: HostReport[]): Tally {
  const verdicts = hosts.map(junitVerdict);
  return {
    tests: hosts.length,
    failures: verdicts.filter((v) => v.kind === 'failure').length,
    skipped: verdicts.filter((v) => v.kind === 'skipped').length,
  };
}

function countAttrs(t: Tally, ms: number | null): string {
  return `tests="${t.tests}" failures="${t.failures}" errors="0" skipped="${t.skipped}" time="${seconds(ms)}"`;
}

function renderTestcase(host: HostReport): string {
  const verdict = junitVerdict(host);
  const open = `    <testcase name="${attr(oneLine(host.host))}" classname="${attr(oneLine(host.deviceType ?? '') || 'unknown')}" time="${seconds(host.durationMs)}"`;
  const body: string[] = [];
  if (verdict.kind === 'failure') {
    body.push(
      `      <failure message="${attr(oneLine(verdict.message))}" type="${host.outcome}">${escapeXml(failureText(host))}</failure>`,
    );
  } else if (verdict.kind === 'skipped') {
    body.push(`      <skipped message="${attr(oneLine(verdict.message))}"/>`);
  }
  if (host.stage2Log) {
    body.push(`      <system-out>${escapeXml(safeMultiline(host.stage2Log))}</system-out>`);
  }
  return body.length === 0 ? `${open}/>` : `${open}>\n${body.join('\n')}\n    </testcase>`;
}

/** The failure body: outcome, error, next step, and where each phase ended. */
function failureText(host: HostReport): string {
  const lines = [`outcome: ${host.outcome}`];
  if (host.error) lines.push(`error: ${host.error.class}: ${safeMultiline(host.error.message)}`);
  lines.push(`next step: ${nextStepFor(host)}`);
  lines.push(`address: ${host.address}:${host.port}`);
  if (host.phases.length > 0) {
    lines.push('phases:');
    for (const p of host.phases) {
      lines.push(
        `  ${p.name}: ${p.ok ? 'ok' : 'FAILED'} in ${formatDuration(p.durationMs)}${p.error ? ` (${oneLine(p.error)})` : ''}`,
      );
    }
  }
  return lines.join('\n');
}
