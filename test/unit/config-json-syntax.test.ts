import { describe, expect, it } from 'vitest';
import { findJsonSyntaxError } from '../../orchestrator/config/json-syntax.ts';

describe('findJsonSyntaxError', () => {
  it.each(['{}', '[]', ' {"a": [1, -2.5e3, true, false, null, "x\\n\\u00e9"], "b": {}} ', '"text"', '0'])(
    'accepts valid JSON %s',
    (text) => {
      expect(() => JSON.parse(text)).not.toThrow();
      expect(findJsonSyntaxError(text)).toBeUndefined();
    },
  );

  it.each([
    ['{"a": 1,}', 8, 'expected a property name in double quotes'],
    ['{"a" 1}', 5, "expected ':' after the property name"],
    ['{"a": tru}', 6, 'expected a value (object, array, string, number, true, false or null)'],
    ['{"a": 1 "b": 2}', 8, "expected ',' or '}' after the property value"],
    ['[1 2]', 3, "expected ',' or ']' after the array element"],
    ['{"a": "x\\q"}', 9, 'bad escape in a string'],
    ['{"a": "line\nbreak"}', 11, 'control character (such as a line break) inside a string'],
    ['{"a": 01}', 7, "expected ',' or '}' after the property value"],
    ['{"a":', 5, 'the JSON ends too early'],
    ['{} x', 3, 'unexpected text after the end of the JSON value'],
  ])('finds where %j goes wrong', (text, offset, message) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(findJsonSyntaxError(text)).toEqual({ offset, message });
  });
});
