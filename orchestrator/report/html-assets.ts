// The stylesheet and the script inlined into report.html. Both are constants: nothing from a
// host ever goes into them (host data lives only in escaped text and attributes), which is
// what lets the page pin its script with a CSP hash.

export const REPORT_CSS = `
:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1d2329; --muted: #5f6b76; --line: #dde2e7; --head: #f4f6f8;
  --zebra: #fafbfc; --hover: #eef4fb; --accent: #1565c0; --code-bg: #f4f6f8;
  --na-bg: #b3261e; --na-fg: #ffffff;
  --failed-bg: #fde3e1; --failed-fg: #8c1d18;
  --reverted-bg: #fff0c2; --reverted-fg: #6b4b00;
  --unreachable-bg: #f1e3fa; --unreachable-fg: #5b2886;
  --refused-bg: #e1eefa; --refused-fg: #124a78;
  --notstarted-bg: #eceff1; --notstarted-fg: #455a64;
  --ok-bg: #dff3e4; --ok-fg: #1b6b32;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #15191d; --fg: #e3e7eb; --muted: #9aa6b2; --line: #2e353c; --head: #1d2227;
    --zebra: #181d21; --hover: #1f2a36; --accent: #7fb3ff; --code-bg: #1d2227;
    --failed-bg: #4a1c1a; --failed-fg: #ffb4ab;
    --reverted-bg: #43360b; --reverted-fg: #f5d77a;
    --unreachable-bg: #3a2150; --unreachable-fg: #dcb8ff;
    --refused-bg: #14324f; --refused-fg: #a9d1ff;
    --notstarted-bg: #2a3237; --notstarted-fg: #b6c3cc;
    --ok-bg: #163a21; --ok-fg: #8fdba3;
  }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html { background: var(--bg); color: var(--fg); }
body {
  margin: 0 auto; padding: 24px 28px 48px; max-width: 1500px;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif;
}
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
h1 { font-size: 22px; margin: 0 0 4px; font-weight: 650; }
h1 code { font-size: 0.85em; font-weight: 500; }
.meta { color: var(--muted); margin: 0 0 14px; }
.verdict { font-size: 17px; font-weight: 600; margin: 0 0 16px; }
.verdict.bad { color: var(--failed-fg); }
.verdict.good { color: var(--ok-fg); }
.counts { display: flex; flex-wrap: wrap; gap: 8px; margin: 0 0 16px; }
.count {
  display: inline-flex; align-items: baseline; gap: 8px; padding: 8px 14px; min-width: 92px;
  border: 1px solid var(--line); border-radius: 10px; background: var(--bg); color: var(--fg);
  font: inherit; cursor: pointer; text-align: left;
}
.count .n { font-size: 22px; font-weight: 700; font-variant-numeric: tabular-nums; }
.count:hover { background: var(--hover); }
.count[aria-pressed="true"] { outline: 2px solid var(--accent); outline-offset: 1px; }
.controls {
  display: flex; flex-wrap: wrap; align-items: end; gap: 10px 16px; padding: 12px 14px; margin: 0 0 12px;
  background: var(--head); border: 1px solid var(--line); border-radius: 10px;
}
.controls label { display: flex; flex-direction: column; gap: 3px; font-size: 12px; color: var(--muted); }
.controls select, .controls input, .controls button {
  font: inherit; font-size: 14px; color: var(--fg); background: var(--bg);
  border: 1px solid var(--line); border-radius: 6px; padding: 5px 8px;
}
.controls input[type="search"] { width: 260px; }
.controls button { cursor: pointer; }
#shown { margin-left: auto; color: var(--muted); align-self: center; }
table.hosts { width: 100%; border-collapse: collapse; }
table.hosts > thead th {
  position: sticky; top: 0; z-index: 1; background: var(--head); text-align: left;
  border-bottom: 2px solid var(--line); padding: 0; white-space: nowrap;
}
table.hosts > thead th button {
  all: unset; box-sizing: border-box; display: block; width: 100%; padding: 8px 10px; cursor: pointer;
  font-weight: 600; font-size: 13px;
}
table.hosts > thead th button:focus-visible { outline: 2px solid var(--accent); }
table.hosts > thead th button::after { content: " \\2195"; color: var(--muted); font-weight: 400; }
table.hosts > thead th[aria-sort="ascending"] button::after { content: " \\25B2"; color: var(--accent); }
table.hosts > thead th[aria-sort="descending"] button::after { content: " \\25BC"; color: var(--accent); }
table.hosts > thead th.num button { text-align: right; }
table.hosts > tbody > tr.row > * { padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
table.hosts > tbody:nth-of-type(even) > tr.row { background: var(--zebra); }
table.hosts > tbody > tr.row { cursor: pointer; }
table.hosts > tbody > tr.row:hover { background: var(--hover); }
table.hosts > tbody > tr.row > th { font-weight: 600; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.reason { color: var(--fg); max-width: 60ch; }
td.reason span { display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden; }
.toggle {
  all: unset; cursor: pointer; overflow-wrap: anywhere; border-radius: 4px;
}
.toggle:focus-visible { outline: 2px solid var(--accent); }
.toggle::before { content: "\\25B8"; display: inline-block; width: 1.1em; color: var(--muted); }
.toggle[aria-expanded="true"]::before { content: "\\25BE"; }
.badge {
  display: inline-block; padding: 1px 9px 2px; border-radius: 999px; white-space: nowrap;
  font-size: 12.5px; font-weight: 600; border: 1px solid transparent;
}
.badge .sym { display: inline-block; min-width: 1em; }
.o-needs-attention { --o-bg: var(--na-bg); --o-fg: var(--na-fg); }
.o-failed { --o-bg: var(--failed-bg); --o-fg: var(--failed-fg); }
.o-reverted { --o-bg: var(--reverted-bg); --o-fg: var(--reverted-fg); }
.o-unreachable { --o-bg: var(--unreachable-bg); --o-fg: var(--unreachable-fg); }
.o-refused { --o-bg: var(--refused-bg); --o-fg: var(--refused-fg); }
.o-not-started { --o-bg: var(--notstarted-bg); --o-fg: var(--notstarted-fg); }
.o-ready, .o-migrated { --o-bg: var(--ok-bg); --o-fg: var(--ok-fg); }
.badge { background: var(--o-bg); color: var(--o-fg); border-color: color-mix(in srgb, var(--o-fg) 25%, transparent); }
.count .badge { font-size: 13px; }
tbody.host > tr.row > td:first-child { box-shadow: inset 4px 0 0 var(--o-fg); }
tbody.o-needs-attention > tr.row > td:first-child { box-shadow: inset 4px 0 0 var(--na-bg); }
tr.detail > td { padding: 4px 14px 18px 24px; border-bottom: 2px solid var(--line); background: var(--bg); }
.detail-grid { display: grid; grid-template-columns: minmax(260px, 340px) 1fr; gap: 14px 28px; }
.detail-grid h3 { font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); margin: 12px 0 6px; }
.detail-grid .wide { grid-column: 1 / -1; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.next-step {
  margin: 0 0 10px; padding: 10px 12px; border-left: 4px solid var(--accent); background: var(--hover);
  border-radius: 0 6px 6px 0; font-weight: 500;
}
.error-msg { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
ul.reasons { margin: 0; padding-left: 20px; }
ul.reasons li { margin: 2px 0; }
table.phases { border-collapse: collapse; min-width: 520px; }
table.phases th, table.phases td { padding: 3px 10px 3px 0; text-align: left; border-bottom: 1px solid var(--line); vertical-align: top; }
table.phases th { font-size: 12px; color: var(--muted); font-weight: 600; }
table.phases td.bar-cell { width: 180px; }
.bar { display: block; height: 8px; margin-top: 6px; border-radius: 4px; background: var(--accent); min-width: 2px; opacity: 0.75; }
.bar.bad { background: var(--failed-fg); }
.phase-bad { color: var(--failed-fg); font-weight: 600; }
pre.log {
  margin: 0; padding: 10px 12px; max-height: 32em; overflow: auto; background: var(--code-bg);
  border: 1px solid var(--line); border-radius: 6px; font-size: 12.5px; line-height: 1.4;
  white-space: pre-wrap; overflow-wrap: anywhere;
}
mark.hl { background: var(--reverted-bg); color: var(--reverted-fg); font-weight: 600; }
.none { color: var(--muted); font-style: italic; }
.empty { padding: 24px; text-align: center; color: var(--muted); }
footer { margin-top: 28px; color: var(--muted); font-size: 12px; }
@media (max-width: 900px) {
  body { padding: 14px; }
  .detail-grid { grid-template-columns: 1fr; }
  td.reason { max-width: none; }
}
@media print {
  .controls, .counts { display: none; }
  table.hosts > thead th { position: static; }
  tr.detail[hidden] { display: table-row !important; }
}
`;

// Plain ES2017 without template literals, so it can live in a TS string untouched.
export const REPORT_SCRIPT = `
(function () {
  'use strict';
  var table = document.getElementById('hosts');
  if (!table) return;
  var bodies = Array.prototype.slice.call(table.tBodies);
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  var NUMERIC = { rank: true, wave: true, duration: true, bytes: true };
  var fOutcome = document.getElementById('f-outcome');
  var fDevice = document.getElementById('f-device');
  var fWave = document.getElementById('f-wave');
  var fText = document.getElementById('f-text');
  var shown = document.getElementById('shown');
  var empty = document.getElementById('empty');
  var countButtons = Array.prototype.slice.call(document.querySelectorAll('button.count'));
  var sortKey = null;
  var sortDir = 1;

  function setOpen(tbody, open) {
    var toggle = tbody.querySelector('button.toggle');
    var detail = tbody.querySelector('tr.detail');
    if (!toggle || !detail) return;
    toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    detail.hidden = !open;
    // The end of a stage2 log is where it stopped: show that first.
    var pre = open ? detail.querySelector('pre.log') : null;
    if (pre) pre.scrollTop = pre.scrollHeight;
  }
  bodies.forEach(function (tb) { setOpen(tb, false); });

  table.addEventListener('click', function (ev) {
    var row = ev.target.closest('tr.row');
    if (!row) return;
    var sel = window.getSelection && window.getSelection();
    if (sel && String(sel).length > 0 && !ev.target.closest('button')) return;
    var tb = row.parentElement;
    var toggle = tb.querySelector('button.toggle');
    setOpen(tb, !toggle || toggle.getAttribute('aria-expanded') !== 'true');
  });
  document.getElementById('expand-all').addEventListener('click', function () {
    bodies.forEach(function (tb) { if (!tb.hidden) setOpen(tb, true); });
  });
  document.getElementById('collapse-all').addEventListener('click', function () {
    bodies.forEach(function (tb) { setOpen(tb, false); });
  });

  function compare(a, b) {
    var va = a.getAttribute('data-' + sortKey) || '';
    var vb = b.getAttribute('data-' + sortKey) || '';
    if (va === '' || vb === '') {
      // Unknown values (no wave, no duration) stay at the bottom whichever way the sort goes.
      if (va !== vb) return va === '' ? 1 : -1;
    } else {
      var c = NUMERIC[sortKey] ? Number(va) - Number(vb) : collator.compare(va, vb);
      if (c !== 0) return c * sortDir;
    }
    return Number(a.getAttribute('data-index')) - Number(b.getAttribute('data-index'));
  }
  Array.prototype.slice.call(table.tHead.querySelectorAll('button[data-sort]')).forEach(function (btn) {
    btn.addEventListener('click', function () {
      var key = btn.getAttribute('data-sort');
      sortDir = sortKey === key ? -sortDir : 1;
      sortKey = key;
      bodies.slice().sort(compare).forEach(function (tb) { table.appendChild(tb); });
      Array.prototype.slice.call(table.tHead.querySelectorAll('th')).forEach(function (th) {
        th.setAttribute('aria-sort', 'none');
      });
      btn.parentElement.setAttribute('aria-sort', sortDir === 1 ? 'ascending' : 'descending');
    });
  });

  function applyFilters() {
    var o = fOutcome.value;
    var d = fDevice.value;
    var w = fWave.value;
    var q = fText.value.trim().toLowerCase();
    var n = 0;
    bodies.forEach(function (tb) {
      var ok = (!o || tb.getAttribute('data-outcome') === o) &&
        (!d || tb.getAttribute('data-device-key') === d) &&
        (!w || tb.getAttribute('data-wave-key') === w) &&
        (!q || tb.textContent.toLowerCase().indexOf(q) !== -1);
      tb.hidden = !ok;
      if (ok) n++;
    });
    shown.textContent = n + ' of ' + bodies.length + ' hosts shown';
    empty.hidden = n !== 0;
    countButtons.forEach(function (b) {
      b.setAttribute('aria-pressed', b.getAttribute('data-outcome') === o ? 'true' : 'false');
    });
  }
  countButtons.forEach(function (b) {
    b.addEventListener('click', function () {
      var o = b.getAttribute('data-outcome');
      fOutcome.value = fOutcome.value === o ? '' : o;
      applyFilters();
    });
  });
  [fOutcome, fDevice, fWave].forEach(function (el) { el.addEventListener('change', applyFilters); });
  fText.addEventListener('input', applyFilters);
  document.getElementById('reset').addEventListener('click', function () {
    fOutcome.value = ''; fDevice.value = ''; fWave.value = ''; fText.value = '';
    applyFilters();
  });
  applyFilters();
})();
`;
