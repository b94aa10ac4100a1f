// Runs a zod schema over parsed input and turns the first problem (in file order) into a
// ConfigError that points at the offending node and says what to write instead.
import type { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { suggestionHint } from './did-you-mean.ts';
import type { SourceLocation } from './source-location.ts';

export type Path = readonly PropertyKey[];

export interface ValidationContext {
  /** where the value at `path` is (or the key `key` of the mapping at `path`) */
  locate: (path: Path, key?: string) => SourceLocation | { file: string };
  /** extra advice per field name, e.g. `{ port: 'ssh listens on 22 by default' }` */
  hints?: Readonly<Record<string, string>>;
  /** extra advice for one exact dotted path (wins over `hints`), e.g. `{ hosts: '...' }` */
  pathHints?: Readonly<Record<string, string>>;
  /** how to name a path in messages; defaults to dotted keys */
  label?: (path: Path) => string;
}

export function validateWith<S extends z.ZodType>(
  schema: S,
  input: unknown,
  context: ValidationContext,
): z.output<S> {
  const result = schema.safeParse(input, { reportInput: true });
  if (result.success) return result.data;
  const errors = result.error.issues.map((issue) => issueToError(schema, issue, context));
  errors.sort(compareLocations);
  throw errors[0]!;
}

function issueToError(schema: z.ZodType, issue: z.core.$ZodIssue, context: ValidationContext): ConfigError {
  const label = context.label ?? dottedPath;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const known = knownKeysAt(schema, issue.path);
    const where = issue.path.length === 0 ? 'at the top level' : `in ${label(issue.path)}`;
    return new ConfigError(
      `unknown key '${key}' ${where}`,
      context.locate(issue.path, key),
      suggestionHint(key, known),
    );
  }
  const field = [...issue.path].reverse().find((key) => typeof key === 'string') as string | undefined;
  const hint =
    context.pathHints?.[dottedPath(issue.path)] ??
    (field ? context.hints?.[field] : undefined) ??
    (issue.code === 'invalid_type' ? `write ${noun(issue.expected)} here` : 'correct the value');
  const name = issue.path.length === 0 ? 'the file' : label(issue.path);
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return new ConfigError(`${name} is required`, context.locate(issue.path), hint);
  }
  return new ConfigError(`${name} ${describe(issue)}`, context.locate(issue.path), hint);
}

function describe(issue: z.core.$ZodIssue): string {
  // Our schemas give their own messages; zod's defaults start with "Invalid".
  if (!/^Invalid/.test(issue.message)) return `${issue.message}${got(issue)}`;
  if (issue.code === 'invalid_type') return `must be ${noun(issue.expected)}${got(issue)}`;
  if (issue.code === 'invalid_value') {
    return `must be one of: ${issue.values.map(String).join(', ')}${got(issue)}`;
  }
  return issue.message.replace(/^Invalid input: /, 'is invalid: ');
}

function got(issue: z.core.$ZodIssue): string {
  if (!('input' in issue)) return '';
  const value = issue.input;
  if (value === undefined) return '';
  if (value === null) return ' (got nothing)';
  if (Array.isArray(value)) return ' (got a list)';
  if (typeof value === 'object') return ' (got a mapping)';
  const text = typeof value === 'number' ? String(value) : JSON.stringify(value);
  return ` (got ${text.length > 60 ? `${text.slice(0, 57)}...` : text})`;
}

function noun(expected: string): string {
  const nouns: Record<string, string> = {
    string: 'text',
    number: 'a number',
    int: 'a whole number',
    boolean: 'true or false',
    object: 'a mapping (key: value)',
    record: 'a mapping (key: value)',
    array: 'a list',
  };
  return nouns[expected] ?? expected;
}

export function dottedPath(path: Path): string {
  return path
    .map((key, index) => (typeof key === 'number' ? `[${key}]` : `${index ? '.' : ''}${String(key)}`))
    .join('');
}

/** Keys the object schema at `path` accepts, for "did you mean" hints. */
function knownKeysAt(schema: z.ZodType, path: Path): string[] {
  let current: z.core.$ZodType | undefined = unwrap(schema);
  for (const key of path) {
    if (!current) break;
    const def = current._zod.def as unknown as Record<string, unknown> & { type: string };
    if (def.type === 'object') current = (def.shape as Record<string, z.core.$ZodType>)[String(key)];
    else if (def.type === 'record') current = def.valueType as z.core.$ZodType;
    else if (def.type === 'array') current = def.element as z.core.$ZodType;
    else current = undefined;
    current = current && unwrap(current);
  }
  const def = current?._zod.def as { type: string; shape?: Record<string, unknown> } | undefined;
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let current = schema;
  for (;;) {
    const def = current._zod.def as unknown as {
      type: string;
      innerType?: z.core.$ZodType;
      in?: z.core.$ZodType;
      getter?: () => z.core.$ZodType;
    };
    if (def.innerType) current = def.innerType;
    else if (def.type === 'lazy' && def.getter) current = def.getter();
    else if (def.type === 'pipe' && def.in) current = def.in;
    else return current;
  }
}

function compareLocations(a: ConfigError, b: ConfigError): number {
  return (a.where?.line ?? 0) - (b.where?.line ?? 0) || (a.where?.col ?? 0) - (b.where?.col ?? 0);
}
