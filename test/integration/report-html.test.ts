// Opens report.html, written through the run directory the way `balena-migrate report`
// does, in a real headless Chromium from file://, and uses it the way an operator would.
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OUTCOME_ORDER } from '../../orchestrator/report/format.ts';
import {
  readFleetReport,
  writeFleetReports,
  writeHostReport,
  writeRunMeta,
} from '../../orchestrator/report/run-dir.ts';
import { hostileFleet, runFleet, SCRIPT_HOST } from '../fixtures/reports/fleet.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(`report.html browser test skipped: ${CHROMIUM} is missing (apt-get install chromium)`);
}

/** Writes a fixture fleet into a run dir and renders its reports; returns report.html's path. */
async function renderRunDir(dir: string, fleet: ReturnType<typeof runFleet>): Promise<string> {
  writeRunMeta(dir, {
    runId: fleet.runId,
    command: fleet.command,
    mode: fleet.mode,
    startedAt: fleet.startedAt,
    endedAt: fleet.endedAt,
    exitCode: fleet.exitCode,
  });
  for (const h of fleet.hosts) await writeHostReport(dir, h);
  return writeFleetReports(dir, readFleetReport(dir)).html;
}

/** Host names of the rows that are shown, top to bottom. */
function visibleHosts(page: Page): Promise<string[]> {
  return page.$$eval('#hosts > tbody.host:not([hidden])', (rows) =>
    rows.map((r) => r.getAttribute('data-host') ?? ''),
  );
}

function visibleOutcomes(page: Page): Promise<string[]> {
  return page.$$eval('#hosts > tbody.host:not([hidden])', (rows) =>
    rows.map((r) => r.getAttribute('data-outcome') ?? ''),
  );
}

describe.skipIf(!hasChromium)(
  hasChromium
    ? 'report.html in headless Chromium'
    : `report.html in headless Chromium (skipped: ${CHROMIUM} is missing)`,
  () => {
    let tmp: string;
    let context: BrowserContext;
    let page: Page;
    let reportUrl: string;
    const dialogs: string[] = [];
    const pageErrors: string[] = [];
    const fleet = runFleet();

    beforeAll(async () => {
      tmp = mkdtempSync(join(tmpdir(), 'report-html-'));
      reportUrl = pathToFileURL(await renderRunDir(join(tmp, 'run'), fleet)).href;
      context = await chromium.launchPersistentContext(join(tmp, 'profile'), {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
        viewport: { width: 1400, height: 1000 },
      });
      // Anything that leaves the file (a CDN font, a tracking pixel) would be a bug.
      await context.route(/^(?!file:)/, (route) => route.abort());
      page = context.pages()[0] ?? (await context.newPage());
      page.on('dialog', (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(reportUrl);
    }, 60_000);

    afterAll(async () => {
      await context?.close();
      if (process.env.KEEP_REPORT_TMP) console.log(`report-html test files kept in ${tmp}`);
      else if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    it('shows a row for every host, problems first, and says how many are shown', async () => {
      expect(await visibleHosts(page)).toEqual([
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
      for (const h of fleet.hosts) {
        expect(
          await page.locator('#hosts > tbody.host > tr.row > th', { hasText: h.host }).first().isVisible(),
        ).toBe(true);
      }
      expect(await page.textContent('#shown')).toBe('12 of 12 hosts shown');
      expect(pageErrors).toEqual([]);
    });

    it('sorts the rows by outcome when the outcome header is clicked, and reverses on a second click', async () => {
      await page.click('#hosts thead button[data-sort="host"]');
      expect((await visibleHosts(page)).slice(0, 3)).toEqual(['bbb-07', 'edge-gw-4', 'kiosk-9']);

      await page.click('#hosts thead button[data-sort="rank"]');
      const outcomes = await visibleOutcomes(page);
      const rank = (o: string) => OUTCOME_ORDER.indexOf(o as (typeof OUTCOME_ORDER)[number]);
      expect(outcomes.map(rank)).toEqual([...outcomes.map(rank)].sort((a, b) => a - b));
      expect(outcomes[0]).toBe('needs-attention');
      expect(await page.getAttribute('#hosts thead th:has(button[data-sort="rank"])', 'aria-sort')).toBe(
        'ascending',
      );

      await page.click('#hosts thead button[data-sort="rank"]');
      const reversed = await visibleOutcomes(page);
      expect(reversed.map(rank)).toEqual([...reversed.map(rank)].sort((a, b) => b - a));
      expect(reversed[0]).toBe('migrated');
    });

    it('sorts by duration with hosts that have no duration kept at the bottom', async () => {
      await page.click('#hosts thead button[data-sort="duration"]');
      const hosts = await visibleHosts(page);
      expect(hosts[0]).toBe('kiosk-9');
      expect(hosts.at(-2)).toBe('win-lab-2');
      expect(hosts.at(-1)).toBe('spare-12');
      await page.click('#hosts thead button[data-sort="duration"]');
      expect((await visibleHosts(page)).slice(0, 1)).toEqual(['win-lab-2']);
      expect((await visibleHosts(page)).at(-1)).toBe('spare-12');
    });

    it('keeps only the matching rows when filtered by device type, wave, outcome count or text', async () => {
      await page.selectOption('#f-device', { label: 'raspberrypi4-64' });
      expect((await visibleHosts(page)).sort()).toEqual(['pi-10', 'pi-3']);
      expect(await page.textContent('#shown')).toBe('2 of 12 hosts shown');

      await page.selectOption('#f-device', '');
      await page.selectOption('#f-wave', { label: 'wave 3' });
      expect((await visibleHosts(page)).sort()).toEqual(['edge-gw-4', 'kiosk-9', 'win-lab-2']);

      await page.click('button.count[data-outcome="unreachable"]');
      expect((await visibleHosts(page)).sort()).toEqual(['edge-gw-4', 'kiosk-9']);
      expect(await page.getAttribute('button.count[data-outcome="unreachable"]', 'aria-pressed')).toBe(
        'true',
      );

      await page.click('#reset');
      await page.fill('#f-text', 'ETIMEDOUT');
      expect(await visibleHosts(page)).toEqual(['edge-gw-4']);

      await page.fill('#f-text', 'no host has this text');
      expect(await visibleHosts(page)).toEqual([]);
      expect(await page.isVisible('#empty')).toBe(true);

      await page.click('#reset');
      expect(await visibleHosts(page)).toHaveLength(12);
    });

    it('expands a host to its phases, error, next step and stage2 log, scrolled to where it stopped', async () => {
      const bbb = page.locator('#hosts > tbody.host[data-host="bbb-07"]');
      expect(await bbb.locator('tr.detail').isVisible()).toBe(false);
      await bbb.locator('button.toggle').click();
      expect(await bbb.locator('button.toggle').getAttribute('aria-expanded')).toBe('true');
      const detail = bbb.locator('tr.detail');
      expect(await detail.isVisible()).toBe(true);
      expect(await detail.locator('table.phases tbody tr').count()).toBe(8);
      expect(await detail.locator('.next-step').textContent()).toMatch(/^re-upload the image/);
      const log = detail.locator('pre.log');
      expect(await log.textContent()).toContain('does not match the plan');
      const scroll = await log.evaluate((el) => ({
        top: el.scrollTop,
        max: el.scrollHeight - el.clientHeight,
      }));
      expect(scroll.max).toBeGreaterThan(0);
      expect(scroll.top).toBeGreaterThanOrEqual(scroll.max - 1);

      await page.screenshot({ path: join(tmp, 'report.png'), fullPage: true });
      expect(statSync(join(tmp, 'report.png')).size).toBeGreaterThan(20_000);

      await bbb.locator('tr.row').click();
      expect(await detail.isVisible()).toBe(false);
    });

    it('shows a host named like a script tag and a log containing </pre> as text, running nothing', async () => {
      const html = await renderRunDir(join(tmp, 'hostile'), hostileFleet());
      await page.goto(pathToFileURL(html).href);
      const th = page.locator('#hosts > tbody.host > tr.row > th').filter({ hasText: SCRIPT_HOST });
      expect(await th.count()).toBe(1);
      await page.click('#expand-all');
      const pre = page.locator('pre.log');
      expect(await pre.count()).toBe(1);
      expect(await pre.textContent()).toContain('</pre><script>alert(2)</script>');
      expect(await page.locator('script').count()).toBe(1);
      expect(await page.locator('img, b, i').count()).toBe(0);
      // The page's own script still runs under its CSP hash: sorting works.
      await page.click('#hosts thead button[data-sort="host"]');
      expect((await visibleHosts(page))[0]).toBe('../x');
      await page.screenshot({ path: join(tmp, 'hostile.png'), fullPage: true });
      expect(dialogs).toEqual([]);
      expect(pageErrors).toEqual([]);
    });
  },
);
