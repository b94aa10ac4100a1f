# balena-migrate: UEFI variable access for Windows PowerShell 5.1 (shared by probe.ps1 and the
# apply/undo transaction). Windows has no command that writes a Boot#### variable with load
# options of our choosing, so the kernel32 functions Microsoft documents for it are called
# directly: GetFirmwareEnvironmentVariableExW / SetFirmwareEnvironmentVariableExW, after
# enabling SeSystemEnvironmentPrivilege (administrators and SYSTEM hold it, disabled). C# 5
# only: Add-Type compiles with the .NET Framework's own compiler.
if (-not ('BalenaMigrate.Firmware' -as [type])) {
  Add-Type -Language CSharp -TypeDefinition @'
using System;
using System.ComponentModel;
using System.Runtime.InteropServices;

namespace BalenaMigrate {
  public static class Firmware {
    [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    private static extern uint GetFirmwareEnvironmentVariableExW(string name, string guid, byte[] buffer, uint size, out uint attributes);

    [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    private static extern bool SetFirmwareEnvironmentVariableExW(string name, string guid, byte[] value, uint size, uint attributes);

    [DllImport("kernel32.dll", SetLastError = true)]
    private static extern bool GetFirmwareType(out uint firmwareType);

    [DllImport("kernel32.dll")]
    private static extern IntPtr GetCurrentProcess();

    [DllImport("kernel32.dll")]
    private static extern bool CloseHandle(IntPtr handle);

    [DllImport("advapi32.dll", SetLastError = true)]
    private static extern bool OpenProcessToken(IntPtr process, uint access, out IntPtr token);

    [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    private static extern bool LookupPrivilegeValueW(string system, string name, out long luid);

    [DllImport("advapi32.dll", SetLastError = true)]
    private static extern bool AdjustTokenPrivileges(IntPtr token, bool disableAll, ref TokenPrivilege state, uint length, IntPtr previous, IntPtr returnLength);

    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    private struct TokenPrivilege {
      public uint Count;
      public long Luid;
      public uint Attributes;
    }

    private const int ERROR_ENVVAR_NOT_FOUND = 203;

    // "UEFI", "BIOS" or "Unknown", from GetFirmwareType (Windows 8 and later).
    public static string Type() {
      uint t;
      if (!GetFirmwareType(out t)) return "Unknown";
      if (t == 1) return "BIOS";
      if (t == 2) return "UEFI";
      return "Unknown";
    }

    // Enables SeSystemEnvironmentPrivilege in this process's token; throws if it is not held.
    public static void EnablePrivilege() {
      IntPtr token;
      if (!OpenProcessToken(GetCurrentProcess(), 0x0020 | 0x0008, out token)) {
        throw new Win32Exception(Marshal.GetLastWin32Error());
      }
      try {
        TokenPrivilege tp = new TokenPrivilege();
        tp.Count = 1;
        tp.Attributes = 0x2;
        if (!LookupPrivilegeValueW(null, "SeSystemEnvironmentPrivilege", out tp.Luid)) {
          throw new Win32Exception(Marshal.GetLastWin32Error());
        }
        if (!AdjustTokenPrivileges(token, false, ref tp, 0, IntPtr.Zero, IntPtr.Zero)) {
          throw new Win32Exception(Marshal.GetLastWin32Error());
        }
        int err = Marshal.GetLastWin32Error();
        if (err != 0) throw new Win32Exception(err);
      } finally {
        CloseHandle(token);
      }
    }

    // The variable's bytes, or null when it does not exist.
    public static byte[] Get(string name, string guid, out uint attributes) {
      byte[] buffer = new byte[65536];
      uint n = GetFirmwareEnvironmentVariableExW(name, guid, buffer, (uint)buffer.Length, out attributes);
      if (n == 0) {
        int err = Marshal.GetLastWin32Error();
        attributes = 0;
        if (err == ERROR_ENVVAR_NOT_FOUND) return null;
        throw new Win32Exception(err);
      }
      byte[] value = new byte[n];
      Array.Copy(buffer, value, (int)n);
      return value;
    }

    public static void Set(string name, string guid, byte[] value, uint attributes) {
      if (value == null || value.Length == 0) throw new ArgumentException("a firmware variable cannot be set to nothing");
      if (!SetFirmwareEnvironmentVariableExW(name, guid, value, (uint)value.Length, attributes)) {
        throw new Win32Exception(Marshal.GetLastWin32Error());
      }
    }

    // Deletes the variable (a write of zero bytes); a variable already gone is fine.
    public static void Delete(string name, string guid, uint attributes) {
      if (!SetFirmwareEnvironmentVariableExW(name, guid, null, 0, attributes)) {
        int err = Marshal.GetLastWin32Error();
        if (err != ERROR_ENVVAR_NOT_FOUND) throw new Win32Exception(err);
      }
    }
  }
}
'@
}

$BmEfiGlobal = '{8BE4DF61-93CA-11D2-AA0D-00E098032B8C}'

# Get-BmFirmwareVariable NAME: @{ Value = bytes or $null; Attributes = uint }.
function Get-BmFirmwareVariable([string]$Name) {
  $attributes = [uint32]0
  $value = [BalenaMigrate.Firmware]::Get($Name, $BmEfiGlobal, [ref]$attributes)
  return @{ Value = $value; Attributes = $attributes }
}

function ConvertTo-BmHex([byte[]]$Bytes) {
  if ($null -eq $Bytes) { return $null }
  return ([System.BitConverter]::ToString($Bytes) -replace '-', '').ToLowerInvariant()
}
