// Secrets that may show up in a stage2 log or a command's output (Wi-Fi keys, 802.1x
// passwords, an API key) are replaced before the text is kept in a report. Stage2 redacts
// its own log the same way; this is the second line of defence on the laptop.

const SECRET_KEYS =
  'psk|password|passwd|passphrase|wep-key[0-9]|wep_key[0-9]|private-key-password|pin|secret|apikey|api_key|apiKey|wpa-psk|Passphrase';

const PATTERN = new RegExp(`((?:${SECRET_KEYS})"?[ \\t]*[=:][ \\t]*"?)[^\\s",]+`, 'g');

/** TEXT with the value of every `secret-key=value` (or `"key": "value"`) replaced. */
export function redactSecrets(text: string): string {
  return text.replace(PATTERN, '$1<redacted>');
}
