// Parses a YAML file while keeping the map from values back to their line and column, so
// every later error can point at the offending node. Syntax errors and duplicate keys are
// reported here, before anything reads the values.
import { type Document, isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { ConfigError } from '../errors.ts';
import { locationAt, type SourceLocation } from './source-location.ts';
import type { SourceText } from './source-text.ts';

export type YamlPath = readonly PropertyKey[];

export interface YamlSource extends SourceText {
  doc: Document.Parsed;
  lineCounter: LineCounter;
}

export function parseYamlSource(source: SourceText): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source.text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const yaml: YamlSource = { ...source, doc, lineCounter };
  const first = doc.errors[0];
  if (first) {
    if (first.code === 'DUPLICATE_KEY') throw duplicateKeyError(yaml, first.pos[0]);
    throw new ConfigError(
      `YAML syntax error: ${first.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '')}`,
      offsetLocation(yaml, first.pos[0]),
      'check the indentation and quoting on this line and the one before it',
    );
  }
  return yaml;
}

/** The plain JS value of the document (null for an empty one). */
export function yamlValue(yaml: YamlSource): unknown {
  // maxAliasCount guards against "billion laughs" alias bombs.
  return yaml.doc.toJS({ maxAliasCount: 1000 });
}

export function offsetLocation(yaml: YamlSource, offset: number): SourceLocation {
  const { line, col } = yaml.lineCounter.linePos(offset);
  return { file: yaml.file, line, col };
}

export function nodeLocation(yaml: YamlSource, node: Node | null | undefined): SourceLocation {
  return node?.range ? offsetLocation(yaml, node.range[0]) : locationAt(yaml.file, yaml.text, 0);
}

/** The node at `path`, or undefined when the path does not exist in the document. */
export function nodeAtPath(yaml: YamlSource, path: YamlPath): Node | undefined {
  let node: unknown = yaml.doc.contents;
  for (const key of path) {
    if (isMap(node)) {
      node = node.items.find((pair) => scalarText(pair.key) === String(key))?.value ?? undefined;
    } else if (isSeq(node) && typeof key === 'number') {
      node = node.items[key];
    } else {
      return undefined;
    }
    if (node === undefined) return undefined;
  }
  return (node as Node | null) ?? undefined;
}

/** The key node of `key` in the map at `mapPath`. */
export function keyNodeAt(yaml: YamlSource, mapPath: YamlPath, key: string): Node | undefined {
  const map = mapPath.length === 0 ? yaml.doc.contents : nodeAtPath(yaml, mapPath);
  if (!isMap(map)) return undefined;
  const pair = map.items.find((item) => scalarText(item.key) === key);
  return (pair?.key as Node | undefined) ?? undefined;
}

/**
 * Where `path` is: the value node if present, otherwise the key of its nearest present
 * ancestor, otherwise the start of the file.
 */
export function locatePath(yaml: YamlSource, path: YamlPath): SourceLocation {
  for (let depth = path.length; depth >= 0; depth--) {
    const prefix = path.slice(0, depth);
    const node = depth === 0 ? yaml.doc.contents : nodeAtPath(yaml, prefix);
    if (node) return nodeLocation(yaml, node);
    // `key:` with no value: the key is there, its value is null.
    const last = prefix[prefix.length - 1];
    const key = depth > 0 ? keyNodeAt(yaml, prefix.slice(0, -1), String(last)) : undefined;
    if (key) return nodeLocation(yaml, key);
  }
  return locationAt(yaml.file, yaml.text, 0);
}

export function scalarText(node: unknown): string | undefined {
  return isScalar(node) ? String(node.value) : undefined;
}

function duplicateKeyError(yaml: YamlSource, offset: number): ConfigError {
  const found = findKeyAt(yaml.doc.contents, offset, []);
  const at = offsetLocation(yaml, offset);
  if (!found) return new ConfigError('duplicate key', at, 'keys must be unique within a mapping');
  const first = nodeLocation(yaml, found.first);
  const where = found.parentPath.length === 0 ? 'at the top level' : `in ${found.parentPath.join('.')}`;
  return new ConfigError(
    `'${found.key}' appears twice ${where} (first at line ${first.line}, column ${first.col})`,
    at,
    'merge the two entries into one: a key may appear only once in a mapping',
  );
}

/** Finds the map key starting at `offset` and the earlier key it duplicates. */
function findKeyAt(
  node: unknown,
  offset: number,
  path: string[],
): { key: string; first: Node; parentPath: string[] } | undefined {
  if (isMap(node)) {
    for (const [index, pair] of node.items.entries()) {
      const key = scalarText(pair.key);
      if (key !== undefined && (pair.key as Node).range?.[0] === offset) {
        const first = node.items.slice(0, index).find((earlier) => scalarText(earlier.key) === key);
        if (first) return { key, first: first.key as Node, parentPath: path };
      }
      const inner = findKeyAt(pair.value, offset, key === undefined ? path : [...path, key]);
      if (inner) return inner;
    }
  } else if (isSeq(node)) {
    for (const [index, item] of node.items.entries()) {
      const inner = findKeyAt(isPair(item) ? item.value : item, offset, [...path, String(index)]);
      if (inner) return inner;
    }
  }
  return undefined;
}
