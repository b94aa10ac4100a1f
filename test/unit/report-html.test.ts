import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { escapeHtml, renderHtmlReport } from '../../orchestrator/report/html.ts';
import { REPORT_SCRIPT } from '../../orchestrator/report/html-assets.ts';
import { HOSTILE_LOG, hostileFleet, runFleet, SCRIPT_HOST } from '../fixtures/reports/fleet.ts';

const count = (text: string, needle: string) => text.split(needle).length - 1;
const tbodies = (html: string) =>
  [...html.matchAll(/<tbody class="host [^"]*"([^>]*)>/g)].map((m) => m[1] ?? '');
const attr = (attrs: string, name: string) => new RegExp(` ${name}="([^"]*)"`).exec(attrs)?.[1];

describe('renderHtmlReport', () => {
  const html = renderHtmlReport(runFleet());

  it('is one self-contained file: no external scripts, styles, images or fonts', () => {
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/\b(src|href)=/i);
    expect(html).not.toMatch(/url\(/i);
    expect(html).not.toMatch(/@import/i);
    expect(count(html, '<script')).toBe(1);
    expect(count(html, '<style')).toBe(1);
  });

  it('pins its one inline script with a CSP hash', () => {
    const hash = createHash('sha256').update(REPORT_SCRIPT).digest('base64');
    expect(html).toContain(`script-src &#39;sha256-${hash}&#39;`);
    expect(html).toContain(`<script>${REPORT_SCRIPT}</script>`);
  });

  it('has one tbody per host, problems first, carrying the values the page sorts by', () => {
    const rows = tbodies(html);
    expect(rows).toHaveLength(12);
    expect(rows.map((r) => attr(r, 'data-host'))).toEqual([
      'win-lab-2',
      'nuc-05',
      'bbb-07',
      'edge-gw-4',
      'kiosk-9',
      'old-pc-1',
      'pi-zero-1',
      'spare-12',
      'nuc-01',
      'nuc-02',
      'pi-3',
      'pi-10',
    ]);
    const ranks = rows.map((r) => Number(attr(r, 'data-rank')));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    const bbb = rows[2] ?? '';
    expect(attr(bbb, 'data-wave')).toBe('2');
    expect(attr(bbb, 'data-duration')).toBe('512000');
    expect(attr(bbb, 'data-bytes')).toBe(String(410 * 2 ** 20));
    expect(attr(rows[7] ?? '', 'data-duration')).toBe('');
  });

  it('has a clickable count per outcome and filters for outcome, device type and wave', () => {
    expect(html).toContain('data-outcome="unreachable" aria-pressed="false"');
    expect(html).toMatch(/<span class="n">2<\/span> <span class="badge o-unreachable">/);
    const deviceSelect = /<select id="f-device">([\s\S]*?)<\/select>/.exec(html)?.[1] ?? '';
    expect([...deviceSelect.matchAll(/<option value="([^"]*)">([^<]*)</g)].map((m) => m[2])).toEqual([
      'all device types',
      'beaglebone-black',
      'genericx86-64-ext',
      'raspberrypi4-64',
      'unknown',
    ]);
    const waveSelect = /<select id="f-wave">([\s\S]*?)<\/select>/.exec(html)?.[1] ?? '';
    expect(waveSelect).toContain('<option value="w:4">wave 4</option>');
    expect(html).toContain('<input type="search" id="f-text"');
  });

  it('labels every outcome with text and a symbol, not colour alone', () => {
    expect(html).toMatch(
      /<span class="badge o-failed"><span class="sym" aria-hidden="true">.<\/span> failed<\/span>/,
    );
  });

  it('details each host: phases with durations, error, next step, refusal reasons and the stage2 log', () => {
    const bbb = html.slice(html.indexOf('data-host="bbb-07"'), html.indexOf('data-host="edge-gw-4"'));
    expect(bbb).toMatch(/<code>upload<\/code><\/td><td class="">ok<\/td><td class="num">5m01s<\/td>/);
    expect(bbb).toMatch(/<code>verify<\/code><\/td><td class="phase-bad">failed<\/td>/);
    expect(bbb).toContain(
      '<code>Stage2RevertedError</code> stage2 stopped before writing: image hash mismatch',
    );
    expect(bbb).toContain('<p class="next-step">re-upload the image');
    expect(bbb).toContain('<h3>Stage2 log (61 lines)</h3><pre class="log">stage2: [00] step 0 ok');
    expect(bbb).toContain('<mark class="hl">stage2: sha256 of balena.img.gz does not match');
    const old = html.slice(html.indexOf('data-host="old-pc-1"'), html.indexOf('data-host="pi-zero-1"'));
    expect(old).toContain('<li>install disk sda is 4.0 GiB; balenaOS needs at least 8 GiB</li>');
    expect(old).not.toContain('Stage2 log');
  });

  it('escapes a host named like a script tag everywhere it appears', () => {
    const out = renderHtmlReport(hostileFleet());
    expect(out).not.toContain(SCRIPT_HOST);
    expect(out).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(count(out, '<script')).toBe(1);
    expect(out).not.toMatch(/<(img|b|i)\b/);
  });

  it('keeps a log containing </pre> inside its own pre element', () => {
    const out = renderHtmlReport(hostileFleet());
    expect(count(out, '<pre')).toBe(1);
    expect(count(out, '</pre>')).toBe(1);
    const pre = /<pre class="log">([\s\S]*?)<\/pre>/.exec(out)?.[1] ?? '';
    expect(pre).toContain('&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;');
    expect(pre).not.toContain('\u001b');
    expect(HOSTILE_LOG).toContain('</pre>');
  });

  it('escapes quotes so host text cannot leave an attribute', () => {
    expect(escapeHtml(`"a" 'b' <c> & d`)).toBe('&quot;a&quot; &#39;b&#39; &lt;c&gt; &amp; d');
  });
});
