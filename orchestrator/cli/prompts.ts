// Asks the operator for a key passphrase or a sudo password on the terminal, without echo,
// once per key / once per run. Not on a terminal there is nobody to ask: the caller gets an
// error that says to use ssh-agent or NOPASSWD sudo instead.
import { createInterface } from 'node:readline';

export async function askHidden(question: string): Promise<string> {
  if (!process.stdin.isTTY) {
    throw new Error(`${question.trim()} — no terminal to ask on (use ssh-agent, or sudo with NOPASSWD)`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  // Mute the echo: write the question ourselves, then swallow what readline would print.
  const out = rl as unknown as { _writeToOutput: (s: string) => void };
  process.stderr.write(question);
  out._writeToOutput = () => {};
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

/** A prompt that is asked once and remembered for the rest of the run. */
export function once(ask: () => Promise<string>): () => Promise<string> {
  let answer: Promise<string> | undefined;
  return () => {
    answer ??= ask();
    return answer;
  };
}
