// The INI dialects the network stacks write: NetworkManager keyfiles (GKeyFile), connman
// settings (GKeyFile too) and systemd .network files (repeated sections and keys). One reader
// for all three: sections in order, entries in order, nothing merged.

export interface IniEntry {
  key: string;
  value: string;
  line: number;
}

export interface IniSection {
  name: string;
  line: number;
  entries: IniEntry[];
}

export interface IniDocument {
  sections: IniSection[];
  /** lines that are neither a section, an entry, a comment nor blank (1-based) */
  badLines: number[];
  /** entries before the first section header (1-based) */
  orphanLines: number[];
}

/** GKeyFile's escapes in values: \s \n \t \r \\ (other backslashes are kept as they are). */
export function unescapeKeyfileValue(raw: string): string {
  return raw.replace(/\\([sntr\\])/g, (_m, c: string) =>
    c === 's' ? ' ' : c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : '\\',
  );
}

/**
 * Reads INI text. `comments` are the characters that start a comment line (GKeyFile: `#`;
 * systemd: `#` and `;`). With `continuation`, a line ending in a backslash goes on (systemd).
 * With `unescape`, GKeyFile escapes in values are decoded.
 */
export function parseIni(
  text: string,
  opts: { comments?: string; continuation?: boolean; unescape?: boolean } = {},
): IniDocument {
  const comments = opts.comments ?? '#';
  const doc: IniDocument = { sections: [], badLines: [], orphanLines: [] };
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let current: IniSection | undefined;
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    let line = lines[i]!;
    while (opts.continuation && line.endsWith('\\') && i + 1 < lines.length) {
      i++;
      line = `${line.slice(0, -1)} ${lines[i]!.trimStart()}`;
    }
    const t = line.trim();
    if (t === '' || comments.includes(t[0]!)) continue;
    const section = /^\[([^\]]+)\]$/.exec(t);
    if (section) {
      current = { name: section[1]!.trim(), line: n, entries: [] };
      doc.sections.push(current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0 || line.slice(0, eq).trim() === '') {
      doc.badLines.push(n);
      continue;
    }
    if (!current) {
      doc.orphanLines.push(n);
      continue;
    }
    const key = line.slice(0, eq).trim();
    const raw = line.slice(eq + 1).replace(/^[ \t]+/, '');
    current.entries.push({ key, value: opts.unescape ? unescapeKeyfileValue(raw) : raw.trimEnd(), line: n });
  }
  return doc;
}

/** The sections called NAME (any of NAMES), in order. */
export function sectionsNamed(doc: IniDocument, ...names: string[]): IniSection[] {
  return doc.sections.filter((s) => names.includes(s.name));
}

/** The last value of KEY in the first section called NAME (any of NAMES). */
export function iniValue(doc: IniDocument, names: string | string[], key: string): string | undefined {
  const section = sectionsNamed(doc, ...(Array.isArray(names) ? names : [names]))[0];
  return section ? lastValue(section, key) : undefined;
}

export function lastValue(section: IniSection, key: string): string | undefined {
  for (let i = section.entries.length - 1; i >= 0; i--) {
    if (section.entries[i]!.key === key) return section.entries[i]!.value;
  }
  return undefined;
}

export function allValues(section: IniSection, key: string): string[] {
  return section.entries.filter((e) => e.key === key).map((e) => e.value);
}
