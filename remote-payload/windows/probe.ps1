# balena-migrate Windows probe (Windows PowerShell 5.1, run as administrator). Read-only: it
# prints one JSON object and leaves nothing behind (a drive letter it gives the EFI system
# partition is taken back, a test file in the work dir is deleted). The orchestrator sends it
# with `$WorkDir = '...'` and firmware.ps1 in front; orchestrator/facts/windows.ts reads it.
# Property names are the cmdlets' own (Get-Disk, Get-Partition, Get-Volume, ...); enums are
# printed as their names. Every non-ASCII character is escaped, so no code page can garble it.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$BmWarnings = New-Object System.Collections.Generic.List[string]

function Add-BmWarning([string]$Text) { $BmWarnings.Add($Text) }

# A value as text, or $null.
function ConvertTo-BmText($Value) {
  if ($null -eq $Value) { return $null }
  return [string]$Value
}

# A drive letter as 'C', or $null (the cmdlets print a NUL character when there is none).
function ConvertTo-BmLetter($Value) {
  if ($null -eq $Value) { return $null }
  $s = ([string]$Value).Trim([char]0, ' ', ':', '\')
  if ($s -match '^[A-Za-z]$') { return $s.ToUpperInvariant() }
  return $null
}

# ---- the machine ---------------------------------------------------------------------------------
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$cs = Get-CimInstance -ClassName Win32_ComputerSystem
$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$isAdmin = ([Security.Principal.WindowsPrincipal]$identity).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)

$firmwareType = $env:firmware_type
if (-not $firmwareType) {
  try { $firmwareType = [BalenaMigrate.Firmware]::Type() } catch { Add-BmWarning "firmware type: $($_.Exception.Message)" }
}

$secureBoot = [ordered]@{ Enabled = $null; Error = $null }
try {
  $secureBoot.Enabled = [bool](Confirm-SecureBootUEFI)
} catch {
  $secureBoot.Error = $_.Exception.Message
}

# ---- BitLocker -----------------------------------------------------------------------------------
$bitLockerVolumes = $null
$bitLockerError = $null
$manageBde = $null
if (Get-Command -Name Get-BitLockerVolume -ErrorAction SilentlyContinue) {
  try {
    $bitLockerVolumes = @(Get-BitLockerVolume | ForEach-Object {
        [ordered]@{
          MountPoint           = ConvertTo-BmText $_.MountPoint
          VolumeType           = ConvertTo-BmText $_.VolumeType
          VolumeStatus         = ConvertTo-BmText $_.VolumeStatus
          ProtectionStatus     = ConvertTo-BmText $_.ProtectionStatus
          EncryptionPercentage = [double]$_.EncryptionPercentage
          LockStatus           = ConvertTo-BmText $_.LockStatus
          EncryptionMethod     = ConvertTo-BmText $_.EncryptionMethod
        }
      })
  } catch {
    $bitLockerError = "Get-BitLockerVolume: $($_.Exception.Message)"
  }
}
if ($null -eq $bitLockerVolumes) {
  $manageBdeExe = Join-Path $env:SystemRoot 'System32\manage-bde.exe'
  if (Test-Path -LiteralPath $manageBdeExe) {
    try {
      $manageBde = (& $manageBdeExe -status 2>&1 | Out-String)
    } catch {
      $bitLockerError = "$bitLockerError; manage-bde -status: $($_.Exception.Message)".TrimStart('; ')
    }
  } elseif (-not $bitLockerError) {
    $bitLockerError = 'neither Get-BitLockerVolume nor manage-bde.exe is available'
  }
}

# ---- disks, partitions, volumes --------------------------------------------------------------------
$disks = @(Get-Disk | ForEach-Object {
    [ordered]@{
      Number            = [int]$_.Number
      FriendlyName      = ConvertTo-BmText $_.FriendlyName
      Size              = [uint64]$_.Size
      BusType           = ConvertTo-BmText $_.BusType
      PartitionStyle    = ConvertTo-BmText $_.PartitionStyle
      IsBoot            = [bool]$_.IsBoot
      IsSystem          = [bool]$_.IsSystem
      IsReadOnly        = [bool]$_.IsReadOnly
      IsOffline         = [bool]$_.IsOffline
      LogicalSectorSize = [int]$_.LogicalSectorSize
      Guid              = ConvertTo-BmText $_.Guid
      Signature         = $(if ($null -ne $_.Signature) { [int64]$_.Signature } else { $null })
    }
  })

$partitionObjects = @(Get-Partition)
$partitions = @($partitionObjects | ForEach-Object {
    [ordered]@{
      DiskNumber      = [int]$_.DiskNumber
      PartitionNumber = [int]$_.PartitionNumber
      Guid            = ConvertTo-BmText $_.Guid
      GptType         = ConvertTo-BmText $_.GptType
      MbrType         = $(if ($null -ne $_.MbrType) { [int]$_.MbrType } else { $null })
      Offset          = [uint64]$_.Offset
      Size            = [uint64]$_.Size
      DriveLetter     = ConvertTo-BmLetter $_.DriveLetter
      IsSystem        = [bool]$_.IsSystem
      IsBoot          = [bool]$_.IsBoot
      Type            = ConvertTo-BmText $_.Type
      AccessPaths     = @($_.AccessPaths | ForEach-Object { [string]$_ })
    }
  })

$volumes = @(Get-Volume | ForEach-Object {
    [ordered]@{
      DriveLetter     = ConvertTo-BmLetter $_.DriveLetter
      FileSystem      = ConvertTo-BmText $_.FileSystem
      FileSystemLabel = ConvertTo-BmText $_.FileSystemLabel
      Size            = [uint64]$_.Size
      SizeRemaining   = [uint64]$_.SizeRemaining
      Path            = ConvertTo-BmText $_.Path
      UniqueId        = ConvertTo-BmText $_.UniqueId
    }
  })

# ---- the EFI system partition: free space and the files the plan cares about ------------------------
$espFiles = @(
  '\EFI\Boot\bootx64.efi',
  '\EFI\Microsoft\Boot\bootmgfw.efi',
  '\EFI\balena-migrate',
  '\efi_backup',
  '\startup.nsh',
  '\balena-stage2.yml'
)
$espMount = [ordered]@{ DriveLetter = $null; MountedByProbe = $false; FreeBytes = $null; Files = $null; Error = $null }
$esp = @($partitionObjects | Where-Object { $_.GptType -eq '{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}' -and $_.IsSystem })
if ($esp.Count -ge 1) {
  $esp = $esp[0]
  $letter = ConvertTo-BmLetter $esp.DriveLetter
  try {
    if (-not $letter) {
      # mountvol X: /s mounts the ESP Windows booted from; /d takes the letter back.
      $used = @([System.IO.DriveInfo]::GetDrives() | ForEach-Object { $_.Name.Substring(0, 1).ToUpperInvariant() })
      $letter = @('Z', 'Y', 'X', 'W', 'V', 'U', 'T', 'S', 'R', 'Q', 'P') | Where-Object { $used -notcontains $_ } | Select-Object -First 1
      if (-not $letter) { throw 'no free drive letter to look into the EFI system partition' }
      $null = & mountvol.exe "$($letter):" /s 2>&1
      if ($LASTEXITCODE -ne 0) { $letter = $null; throw "mountvol /s failed with exit code $LASTEXITCODE" }
      $espMount.MountedByProbe = $true
    }
    $espMount.DriveLetter = $letter
    $drive = New-Object System.IO.DriveInfo "$($letter):"
    $espMount.FreeBytes = [uint64]$drive.AvailableFreeSpace
    $files = [ordered]@{}
    foreach ($f in $espFiles) { $files[$f] = [bool](Test-Path -LiteralPath ("$($letter):" + $f)) }
    $espMount.Files = $files
  } catch {
    $espMount.Error = $_.Exception.Message
  } finally {
    if ($espMount.MountedByProbe) {
      $null = & mountvol.exe "$($letter):" /d 2>&1
      if ($LASTEXITCODE -ne 0) { Add-BmWarning "mountvol $($letter): /d failed: the ESP may still have the letter $letter" }
    }
  }
}

# ---- the work dir ------------------------------------------------------------------------------------
$workDirInfo = [ordered]@{ Path = $WorkDir; Exists = $false; ProbedPath = $null; Writable = $false }
$probed = $WorkDir
while ($probed -and -not (Test-Path -LiteralPath $probed -PathType Container)) { $probed = Split-Path -Parent $probed }
$workDirInfo.Exists = [bool](Test-Path -LiteralPath $WorkDir -PathType Container)
$workDirInfo.ProbedPath = $(if ($probed) { $probed } else { $null })
if ($probed) {
  $testFile = Join-Path $probed ('.balena-migrate-probe-' + [guid]::NewGuid().ToString('N'))
  try {
    [System.IO.File]::WriteAllBytes($testFile, [byte[]]@())
    $workDirInfo.Writable = $true
  } catch {
    Add-BmWarning "the work dir ($probed) is not writable: $($_.Exception.Message)"
  } finally {
    Remove-Item -LiteralPath $testFile -Force -ErrorAction SilentlyContinue
  }
}

# ---- boot entries ------------------------------------------------------------------------------------
$bcdFirmware = $null
$bcdError = $null
try {
  $out = & bcdedit.exe /enum firmware 2>&1 | Out-String
  if ($LASTEXITCODE -eq 0) { $bcdFirmware = $out } else { $bcdError = $out.Trim() }
} catch {
  $bcdError = $_.Exception.Message
}

$efi = [ordered]@{ BootOrder = $null; BootNext = $null; BootCurrent = $null; Options = @(); Error = $null }
if ($firmwareType -eq 'UEFI') {
  try {
    [BalenaMigrate.Firmware]::EnablePrivilege()
    $efi.BootOrder = ConvertTo-BmHex (Get-BmFirmwareVariable 'BootOrder').Value
    $efi.BootNext = ConvertTo-BmHex (Get-BmFirmwareVariable 'BootNext').Value
    $efi.BootCurrent = ConvertTo-BmHex (Get-BmFirmwareVariable 'BootCurrent').Value
    # Boot0000-Boot00FF, and whatever BootOrder names beyond them.
    $numbers = New-Object 'System.Collections.Generic.SortedSet[int]'
    0..255 | ForEach-Object { $null = $numbers.Add($_) }
    if ($efi.BootOrder) {
      for ($i = 0; $i + 3 -lt $efi.BootOrder.Length; $i += 4) {
        $h = $efi.BootOrder.Substring($i, 4)
        $null = $numbers.Add([Convert]::ToInt32($h.Substring(2, 2) + $h.Substring(0, 2), 16))
      }
    }
    $options = New-Object System.Collections.Generic.List[object]
    foreach ($n in $numbers) {
      $name = 'Boot{0:X4}' -f $n
      $v = (Get-BmFirmwareVariable $name).Value
      if ($null -ne $v) { $options.Add([ordered]@{ Name = $name; Value = (ConvertTo-BmHex $v) }) }
    }
    $efi.Options = @($options)
  } catch {
    $efi.Error = $_.Exception.Message
  }
}

$hiberboot = $null
try {
  $hiberboot = [int](Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Power' -Name HiberbootEnabled).HiberbootEnabled
} catch {
  $hiberboot = $null
}

$result = [ordered]@{
  ProbeVersion          = 1
  ComputerName          = $env:COMPUTERNAME
  OperatingSystem       = [ordered]@{
    Caption                = ConvertTo-BmText $os.Caption
    Version                = ConvertTo-BmText $os.Version
    BuildNumber            = ConvertTo-BmText $os.BuildNumber
    OSArchitecture         = ConvertTo-BmText $os.OSArchitecture
    TotalVisibleMemorySize = [uint64]$os.TotalVisibleMemorySize
    FreePhysicalMemory     = [uint64]$os.FreePhysicalMemory
  }
  ComputerSystem        = [ordered]@{
    Manufacturer        = ConvertTo-BmText $cs.Manufacturer
    Model               = ConvertTo-BmText $cs.Model
    TotalPhysicalMemory = [uint64]$cs.TotalPhysicalMemory
  }
  ProcessorArchitecture = $env:PROCESSOR_ARCHITECTURE
  ProcessorArchiteW6432 = $env:PROCESSOR_ARCHITEW6432
  PSVersion             = $PSVersionTable.PSVersion.ToString()
  IsAdministrator       = [bool]$isAdmin
  FirmwareType          = $firmwareType
  SecureBoot            = $secureBoot
  BitLockerVolumes      = $bitLockerVolumes
  BitLockerError        = $bitLockerError
  ManageBdeStatus       = $manageBde
  Disks                 = $disks
  Partitions            = $partitions
  Volumes               = $volumes
  EspMount              = $espMount
  WorkDir               = $workDirInfo
  BcdFirmware           = $bcdFirmware
  BcdError              = $bcdError
  EfiVariables          = $efi
  HiberbootEnabled      = $hiberboot
  Warnings              = @($BmWarnings)
}

$json = ConvertTo-Json -InputObject $result -Depth 8 -Compress
$json = [regex]::Replace($json, '[^\u0000-\u007F]', { param($m) '\u{0:x4}' -f [int][char]$m.Value })
[Console]::Out.Write($json + "`n")
