// Splits an Ansible INI line into words the way Ansible does (shell-like quoting, `#`
// starting a comment), keeping each word's column for error messages.

export interface Token {
  text: string;
  /** 1-based column of the token's first character */
  col: number;
  /** true when the whole value after `=` (or the whole token) was quoted */
  quoted: boolean;
}

export function tokenizeIniLine(line: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length || line[i] === '#') break;
    const start = i;
    let text = '';
    let quoted = false;
    while (i < line.length && !/\s/.test(line[i]!)) {
      const c = line[i]!;
      if (c === '"' || c === "'") {
        const end = line.indexOf(c, i + 1);
        const stop = end < 0 ? line.length : end;
        // A quote right after `=` (or at the start) quotes the whole value.
        if (text === '' || text.endsWith('=')) quoted = true;
        text += line.slice(i + 1, stop);
        i = stop + 1;
      } else {
        text += c;
        i++;
      }
    }
    tokens.push({ text, col: start + 1, quoted });
  }
  return tokens;
}

/**
 * Expands Ansible host ranges: `nuc-[1:3]`, `node[01:10]` (zero-padded), `[a:c]`, and an
 * optional step `[1:9:2]`. Returns undefined when a bracket is not a valid range.
 */
export function expandHostRange(pattern: string): string[] | undefined {
  const match = /\[([^\]]*)\]/.exec(pattern);
  if (!match) return [pattern];
  const [from = '', to = '', stepText = '1', extra] = match[1]!.split(':');
  const step = Number(stepText);
  if (extra !== undefined || !Number.isInteger(step) || step < 1) return undefined;
  const head = pattern.slice(0, match.index);
  const tail = pattern.slice(match.index + match[0].length);
  const values: string[] = [];
  if (/^\d+$/.test(from) && /^\d+$/.test(to)) {
    const width = from.length;
    for (let n = Number(from); n <= Number(to); n += step) values.push(String(n).padStart(width, '0'));
  } else if (/^[a-z]$/.test(from) && /^[a-z]$/.test(to)) {
    for (let c = from.charCodeAt(0); c <= to.charCodeAt(0); c += step) values.push(String.fromCharCode(c));
  } else {
    return undefined;
  }
  if (values.length === 0) return undefined;
  const rest = expandHostRange(tail);
  if (!rest) return undefined;
  return values.flatMap((value) => rest.map((suffix) => `${head}${value}${suffix}`));
}
