import { describe, expect, it } from 'vitest';
import { replayTerminal } from '../fixtures/fleet/screen.ts';

describe('the terminal replay used by the TTY tests', () => {
  it('redraws lines in place after a cursor move up', () => {
    const screen = replayTerminal(
      'one\r\ntwo\r\n\u001b[2A\u001b[1Gfirst\u001b[0K\r\n\u001b[1Gsecond\u001b[0K',
    );
    expect(screen).toEqual(['first', 'second', '']);
  });

  it('clears everything below the cursor', () => {
    expect(replayTerminal('a\nb\nc\u001b[1A\u001b[1G\u001b[0Jz')).toEqual(['a', 'z']);
  });

  it('ignores cursor visibility and line wrapping modes', () => {
    expect(replayTerminal('\u001b[?25lhi\u001b[?25h\u001b[?7h')).toEqual(['hi']);
  });
});
