// The host's side of an upload to Windows: PowerShell and Get-FileHash instead of sh and
// sha256sum, read by the same upload code. What Windows prints is given in the form Windows
// PowerShell 5.1 prints it (CRLF); no Windows host runs here.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CMD_LINE_LIMIT, psQuote } from '../../orchestrator/platform/windows/ps-quote.ts';
import {
  windowsUploadVerifier as v,
  windowsPathFromSftp,
} from '../../orchestrator/platform/windows/upload-verifier.ts';
import { posixUploadVerifier, type UploadTransport, uploadFile } from '../../orchestrator/ssh/upload.ts';
import { scriptOf } from '../fixtures/windows/ps-command.ts';
import { checkBalanced } from '../fixtures/windows/ps-syntax.ts';

const SHA = 'e3'.repeat(32);

describe('Windows paths for PowerShell from SFTP paths', () => {
  it('turns C:/dir/file and /C:/dir/file into C:\\dir\\file', () => {
    expect(windowsPathFromSftp('C:/balena-migrate/config.json')).toBe('C:\\balena-migrate\\config.json');
    expect(windowsPathFromSftp('/C:/balena-migrate/config.json')).toBe('C:\\balena-migrate\\config.json');
  });

  it('refuses a path without a drive', () => {
    expect(() => windowsPathFromSftp('/var/tmp/x')).toThrow(/not an absolute Windows path/);
  });
});

describe('the Windows upload verifier', () => {
  const hostile = "C:/bm/it's $(rm -r C:\\) `n ‘x’.img.part";

  it('checks the final file and the .part with Get-FileHash, the paths quoted by psQuote', () => {
    const script = scriptOf(v.state('C:/balena-migrate/balena-image.img.gz', hostile, 1234));
    expect(script).toContain("$f = 'C:\\balena-migrate\\balena-image.img.gz'");
    expect(script).toContain(`$p = ${psQuote(windowsPathFromSftp(hostile))}`);
    expect(script).toContain('(Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant()');
    expect(script).toContain('if ($s -eq 1234) { [Console]::Out.WriteLine("hash $(Get-BmSha256 $f)") }');
    checkBalanced(script);
  });

  it('moves a verified .part into place, and hashes before moving when not yet verified', () => {
    const move = scriptOf(v.move('C:/w/a.part', 'C:/w/a', 0o600));
    expect(move).toContain("Move-Item -LiteralPath 'C:\\w\\a.part' -Destination 'C:\\w\\a' -Force");
    const finish = scriptOf(v.finish('C:/w/a.part', 'C:/w/a', SHA, 0o600));
    expect(finish).toContain(`if ($h -ne '${SHA}') { [Console]::Out.WriteLine("mismatch $h"); exit 0 }`);
    expect(finish.indexOf('Get-BmSha256 $p')).toBeLessThan(finish.indexOf('Move-Item'));
    for (const s of [move, finish]) checkBalanced(s);
  });

  it('sends every command as powershell.exe and base64 within the cmd.exe limit', () => {
    for (const c of [v.state('C:/w/a', 'C:/w/a.part', 1), v.move('C:/w/a.part', 'C:/w/a', 0o600)]) {
      expect(c.command.length).toBeLessThanOrEqual(CMD_LINE_LIMIT);
      expect(c.command).toMatch(
        /^powershell\.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand [A-Za-z0-9+/=]+$/,
      );
    }
  });

  it('hashes after the transfer and sets no POSIX modes over SFTP (the work dir ACL rules)', () => {
    expect(v.streamingHash).toBeUndefined();
    expect(v.sftpModes).toBe(false);
    expect(posixUploadVerifier.sftpModes).toBe(true);
  });

  it('refuses a hash that is not 64 hex digits rather than pasting it into the script', () => {
    expect(() => v.finish('C:/w/a.part', 'C:/w/a', "x'; Remove-Item C:\\", 0o600)).toThrow(/bad sha256/);
  });
});

describe('upload with the Windows verifier', () => {
  it('skips a file the host already has, from what Get-FileHash printed, without opening SFTP', async () => {
    const data = Buffer.from('{"deviceType":"genericx86-64-ext"}');
    const sha = createHash('sha256').update(data).digest('hex');
    const sent: string[] = [];
    const t: UploadTransport = {
      target: 'admin@win11:22',
      sftp: () => Promise.reject(new Error('SFTP must not be opened for a file that is already there')),
      run: async (command) => {
        sent.push(scriptOf({ command }));
        return { exitCode: 0, stdout: `final ${data.length}\r\nhash ${sha}\r\n`, stderr: '' };
      },
    };
    const r = await uploadFile(t, { data }, 'C:/balena-migrate/config.json', {
      sha256: sha,
      sizeBytes: data.length,
      mode: 0o600,
      verifier: v,
    });
    expect(r).toEqual({ bytesSent: 0, resumedFrom: 0, skipped: true });
    expect(sent).toHaveLength(1);
    expect(sent[0]).toContain("$f = 'C:\\balena-migrate\\config.json'");
    expect(sent[0]).toContain("$p = 'C:\\balena-migrate\\config.json.part'");
  });

  it('reports what PowerShell said when the host cannot be inspected', async () => {
    const t: UploadTransport = {
      target: 'admin@win11:22',
      sftp: () => Promise.reject(new Error('not reached')),
      run: async () => ({ exitCode: 1, stdout: '', stderr: 'Get-Item : Access is denied\r\n' }),
    };
    await expect(
      uploadFile(t, { data: Buffer.from('x') }, 'C:/balena-migrate/x', {
        sha256: SHA,
        sizeBytes: 1,
        mode: 0o600,
        verifier: v,
      }),
    ).rejects.toThrow(
      /cannot inspect C:\/balena-migrate\/x on admin@win11:22 \(exit 1\): Get-Item : Access is denied/,
    );
  });
});
