// Suggests the known name an operator probably meant when they typed an unknown one.

/** The closest candidate, when it is close enough to be a likely typo. */
export function closestName(typed: string, candidates: Iterable<string>): string | undefined {
  const wanted = normalise(typed);
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const distance = editDistance(wanted, normalise(name));
    if (!best || distance < best.distance) best = { name, distance };
  }
  if (!best) return undefined;
  // One edit in three characters is a typo; more than that is a different word.
  const allowed = Math.max(1, Math.floor(Math.max(wanted.length, best.name.length) / 3));
  return best.distance <= allowed ? best.name : undefined;
}

/** "did you mean 'x'?" or the list of valid names when nothing is close. */
export function suggestionHint(typed: string, candidates: readonly string[], noun = 'valid keys'): string {
  const close = closestName(typed, candidates);
  if (close) return `did you mean '${close}'?`;
  return `${noun}: ${candidates.join(', ')}`;
}

// Case and separators are the usual slips between YAML styles (config_json, ConfigJSON).
function normalise(name: string): string {
  return name.toLowerCase().replace(/[-_ ]/g, '');
}

/** Edit distance where swapping two neighbouring letters counts as one edit. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      }
      row[j] = best;
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}
