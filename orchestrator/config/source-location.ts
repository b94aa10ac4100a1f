// Where a value came from, in the `file:line:col` form editors jump to. Lines and columns
// start at 1, as the operator's editor shows them.

export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

/** Line and column of a character offset in `text`. */
export function locationAt(file: string, text: string, offset: number): SourceLocation {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(Math.max(offset, 0), text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { file, line, col: end - lineStart + 1 };
}
