# balena-migrate: the journaled boot-setup transaction on a Windows host (Windows PowerShell
# 5.1). orchestrator/platform/windows/render.ts puts this library into apply.ps1 and undo.ps1
# after the plan's variables ($W, $Plan, $NSteps, $EspGuid, $Entry) and its step functions
# (Invoke-BmStep / Undo-BmStep / Get-BmStepDescription); it does nothing on its own.
#
# Files in the work dir $W, as on Linux:
#   apply.ps1, undo.ps1   the two scripts (same functions, different entry point)
#   apply.run.ps1         the copy of apply.ps1 the scheduled task runs
#   apply.state           line 1 the state, line 2 `plan HASH`, line 3 the reason
#   apply.journal         `plan HASH`, then `begin N` / `saved ID existed|absent` / `done N` / `undone N`
#   apply.lock            held open (FileShare None) by whoever runs steps
#   apply.log             what happened; apply.out: the runner's own errors
#   backup\ID             the byte-exact copy of every file (or firmware variable) a step replaced
#   apply.undo.ps1        the undo script of the plan the journal belongs to
#
# States: running -> committed, or running -> rolling-back -> rolled-back | rollback-failed;
# undo.ps1: -> undoing -> undone | undo-failed. The state query says `interrupted` for a
# running/undoing state whose process is gone (the lock is free).
#
# Detached: Windows' OpenSSH server puts every process of a session in a job object that is
# killed when the session ends, Start-Process children included. apply.ps1 therefore hands the
# steps to a scheduled task (no trigger, started once by hand, run as SYSTEM), which the Task
# Scheduler service starts outside that job.

$J = Join-Path $W 'apply.journal'
$S = Join-Path $W 'apply.state'
$L = Join-Path $W 'apply.log'
$B = Join-Path $W 'backup'
$K = Join-Path $W 'apply.lock'
$U = Join-Path $W 'apply.undo.ps1'
$O = Join-Path $W 'apply.out'
$RunScript = Join-Path $W 'apply.run.ps1'
$TaskPath = '\balena-migrate\'
$TaskName = 'balena-migrate-apply'
$Utf8 = New-Object System.Text.UTF8Encoding $false
$script:EspRoot = $null
$script:EspMountedByUs = $false
$script:Lock = $null

function Write-BmLog([string]$Text) {
  $line = '{0} {1}' -f [DateTime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ssZ'), $Text
  try { [System.IO.File]::AppendAllText($L, $line + "`n", $Utf8) } catch { }
}

# Set-BmState STATE REASON: replace the state file in one step.
function Set-BmState([string]$State, [string]$Reason = '') {
  $text = "$State`nplan $Plan`n$($Reason -replace '[\r\n]+', ' ')`n"
  [System.IO.File]::WriteAllText("$S.tmp", $text, $Utf8)
  if (Test-Path -LiteralPath $S) { [System.IO.File]::Replace("$S.tmp", $S, $null) } else { [System.IO.File]::Move("$S.tmp", $S) }
}

function Get-BmStateLines {
  if (-not (Test-Path -LiteralPath $S)) { return @('absent', '', '') }
  $lines = @([System.IO.File]::ReadAllLines($S, $Utf8)) + @('', '', '')
  return $lines
}

function Get-BmJournalLines {
  if (-not (Test-Path -LiteralPath $J)) { return @() }
  return @([System.IO.File]::ReadAllLines($J, $Utf8))
}

function Add-BmJournal([string]$Line) {
  $fs = New-Object System.IO.FileStream($J, [System.IO.FileMode]::Append, [System.IO.FileAccess]::Write, [System.IO.FileShare]::Read)
  try {
    $bytes = $Utf8.GetBytes($Line + "`n")
    $fs.Write($bytes, 0, $bytes.Length)
    $fs.Flush($true)
  } finally {
    $fs.Dispose()
  }
}

function Test-BmJournal([string]$Line) {
  return (@(Get-BmJournalLines) -ccontains $Line)
}

function Get-BmJournalPlan {
  $first = @(Get-BmJournalLines) | Select-Object -First 1
  if ($first -and $first.StartsWith('plan ')) { return $first.Substring(5) }
  return ''
}

# The steps the journal says were begun and not undone, newest first.
function Get-BmPendingSteps {
  $begun = New-Object 'System.Collections.Generic.List[int]'
  foreach ($line in Get-BmJournalLines) {
    if ($line -match '^begin (\d+)$') { $begun.Add([int]$Matches[1]) }
    elseif ($line -match '^undone (\d+)$') { $null = $begun.Remove([int]$Matches[1]) }
  }
  return @($begun | Sort-Object -Descending -Unique)
}

# Takes apply.lock (an open handle nobody else may share) within SECONDS, or returns $false.
function Enter-BmLock([int]$Seconds) {
  $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
  while ($true) {
    try {
      $script:Lock = [System.IO.File]::Open($K, [System.IO.FileMode]::OpenOrCreate, [System.IO.FileAccess]::ReadWrite, [System.IO.FileShare]::None)
      return $true
    } catch [System.IO.IOException] {
      if ([DateTime]::UtcNow -ge $deadline) { return $false }
      Start-Sleep -Milliseconds 250
    }
  }
}

function Exit-BmLock {
  if ($null -ne $script:Lock) { $script:Lock.Dispose(); $script:Lock = $null }
}

# ---- the EFI system partition ------------------------------------------------------------------

# Gives the ESP of the plan a drive letter (mountvol X: /s) unless it has one, and checks that
# the letter really is that partition. Sets $script:EspRoot to `X:`.
function Mount-BmEsp {
  if ($script:EspRoot) { return }
  $part = @(Get-Partition | Where-Object { "$($_.Guid)" -eq $EspGuid })
  if ($part.Count -ne 1) { throw "the EFI system partition $EspGuid of the plan is not on this host any more" }
  $letter = "$($part[0].DriveLetter)".Trim([char]0, ' ')
  if ($letter -notmatch '^[A-Za-z]$') {
    $used = @([System.IO.DriveInfo]::GetDrives() | ForEach-Object { $_.Name.Substring(0, 1).ToUpperInvariant() })
    $letter = @('Z', 'Y', 'X', 'W', 'V', 'U', 'T', 'S', 'R', 'Q', 'P') | Where-Object { $used -notcontains $_ } | Select-Object -First 1
    if (-not $letter) { throw 'no free drive letter for the EFI system partition' }
    $out = & mountvol.exe "$($letter):" /s 2>&1 | Out-String
    if ($LASTEXITCODE -ne 0) { throw "mountvol $($letter): /s failed ($($out.Trim()))" }
    $script:EspMountedByUs = $true
    $script:EspRoot = "$($letter):"
    $mounted = Get-Partition -DriveLetter $letter -ErrorAction SilentlyContinue
    if ("$($mounted.Guid)" -ne $EspGuid) {
      Dismount-BmEsp
      throw "mountvol /s mounted a partition other than the planned EFI system partition $EspGuid"
    }
    Write-BmLog "mounted the EFI system partition on $($letter):"
  } else {
    $script:EspRoot = "$($letter.ToUpperInvariant()):"
  }
}

function Dismount-BmEsp {
  if ($script:EspMountedByUs -and $script:EspRoot) {
    $letter = $script:EspRoot.Substring(0, 1)
    try { Write-VolumeCache -DriveLetter $letter -ErrorAction SilentlyContinue } catch { }
    $null = & mountvol.exe $script:EspRoot /d 2>&1
    if ($LASTEXITCODE -ne 0) { Write-BmLog "warning: mountvol $($script:EspRoot) /d failed" }
    else { Write-BmLog "took the drive letter $($script:EspRoot) back from the EFI system partition" }
  } elseif ($script:EspRoot) {
    try { Write-VolumeCache -DriveLetter $script:EspRoot.Substring(0, 1) -ErrorAction SilentlyContinue } catch { }
  }
  $script:EspMountedByUs = $false
  $script:EspRoot = $null
}

function Resolve-BmEspPath([string]$EspPath) {
  Mount-BmEsp
  return $script:EspRoot + $EspPath
}

# ---- backups -----------------------------------------------------------------------------------

# Save-BmBackup ID PATH: keep PATH's bytes (or the fact that it did not exist) before a step changes it.
function Save-BmBackup([string]$Id, [string]$Path) {
  if ((Test-BmJournal "saved $Id existed") -or (Test-BmJournal "saved $Id absent")) { return }
  if (Test-Path -LiteralPath $Path -PathType Container) { throw "$Path is a directory, not a file" }
  if (Test-Path -LiteralPath $Path -PathType Leaf) {
    Copy-Item -LiteralPath $Path -Destination (Join-Path $B "$Id.tmp") -Force
    Move-Item -LiteralPath (Join-Path $B "$Id.tmp") -Destination (Join-Path $B $Id) -Force
    Add-BmJournal "saved $Id existed"
  } else {
    Add-BmJournal "saved $Id absent"
  }
}

# Restore-BmBackup ID PATH: put PATH back the way Save-BmBackup found it.
function Restore-BmBackup([string]$Id, [string]$Path) {
  if (Test-BmJournal "saved $Id existed") {
    $copy = Join-Path $B $Id
    if (-not (Test-Path -LiteralPath $copy -PathType Leaf)) { throw "the backup $copy of $Path is missing" }
    Copy-Item -LiteralPath $copy -Destination "$Path.balena-migrate-old" -Force
    Move-Item -LiteralPath "$Path.balena-migrate-old" -Destination $Path -Force
  } elseif (Test-BmJournal "saved $Id absent") {
    if (Test-Path -LiteralPath $Path) { Remove-Item -LiteralPath $Path -Force }
  }
}

function Get-BmSha256([string]$Path) {
  return (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant()
}

# ---- the step kinds ----------------------------------------------------------------------------

function New-BmEspDirectory([string]$Id, [string]$Path) {
  $p = Resolve-BmEspPath $Path
  if (Test-Path -LiteralPath $p -PathType Container) { Add-BmJournal "saved $Id existed"; return }
  Add-BmJournal "saved $Id absent"
  $null = New-Item -ItemType Directory -Path $p
}

function Undo-BmEspDirectory([string]$Id, [string]$Path) {
  if (-not (Test-BmJournal "saved $Id absent")) { return }
  $p = Resolve-BmEspPath $Path
  if (-not (Test-Path -LiteralPath $p -PathType Container)) { return }
  if (@(Get-ChildItem -LiteralPath $p -Force).Count -gt 0) { Write-BmLog "warning: $p is not empty; left in place"; return }
  Remove-Item -LiteralPath $p -Force
}

function Copy-BmToEsp([string]$Id, [string]$From, [string]$To, [string]$Sha256) {
  $t = Resolve-BmEspPath $To
  $n = "$t.balena-migrate-new"
  if (-not (Test-Path -LiteralPath $From -PathType Leaf)) { throw "$From is missing" }
  Save-BmBackup $Id $t
  Copy-Item -LiteralPath $From -Destination $n -Force
  $h = Get-BmSha256 $n
  if ($h -ne $Sha256) {
    Remove-Item -LiteralPath $n -Force
    throw "$From copied with sha256 $h, expected $Sha256"
  }
  Move-Item -LiteralPath $n -Destination $t -Force
}

function Undo-BmCopyToEsp([string]$Id, [string]$To) {
  $t = Resolve-BmEspPath $To
  if (Test-Path -LiteralPath "$t.balena-migrate-new") { Remove-Item -LiteralPath "$t.balena-migrate-new" -Force }
  Restore-BmBackup $Id $t
}

function Write-BmEspFile([string]$Id, [string]$Path, [string]$Base64) {
  $t = Resolve-BmEspPath $Path
  $n = "$t.balena-migrate-new"
  Save-BmBackup $Id $t
  [System.IO.File]::WriteAllBytes($n, [Convert]::FromBase64String($Base64))
  Move-Item -LiteralPath $n -Destination $t -Force
}

function Undo-BmWriteEspFile([string]$Id, [string]$Path) {
  Undo-BmCopyToEsp $Id $Path
}

# Moves FROM to TO on the ESP; TO must not exist. Undo looks at the files, not the journal:
# whatever is at TO while FROM is empty goes back.
function Move-BmEspFile([string]$Id, [string]$From, [string]$To) {
  $f = Resolve-BmEspPath $From
  $t = Resolve-BmEspPath $To
  if (-not (Test-Path -LiteralPath $f -PathType Leaf)) { throw "$f is missing" }
  if (Test-Path -LiteralPath $t) { throw "$t is in the way" }
  Move-Item -LiteralPath $f -Destination $t
}

function Undo-BmMoveEspFile([string]$Id, [string]$From, [string]$To) {
  $f = Resolve-BmEspPath $From
  $t = Resolve-BmEspPath $To
  if ((Test-Path -LiteralPath $t -PathType Leaf) -and -not (Test-Path -LiteralPath $f)) {
    Move-Item -LiteralPath $t -Destination $f
  }
}

# Creates the boot option Boot#### (it must not exist) and reads it back.
function New-BmBootOption([string]$Id, [string]$Name, [string]$Base64) {
  [BalenaMigrate.Firmware]::EnablePrivilege()
  $want = [Convert]::FromBase64String($Base64)
  if (-not (Test-BmJournal "saved $Id absent")) {
    if ($null -ne (Get-BmFirmwareVariable $Name).Value) { throw "$Name exists already (it did not when the host was probed): probe again" }
    Add-BmJournal "saved $Id absent"
  }
  [BalenaMigrate.Firmware]::Set($Name, $BmEfiGlobal, $want, 7)
  $got = (Get-BmFirmwareVariable $Name).Value
  if ((ConvertTo-BmHex $got) -ne (ConvertTo-BmHex $want)) { throw "$Name does not read back as written" }
}

function Undo-BmBootOption([string]$Id, [string]$Name, [string]$Base64) {
  if (-not (Test-BmJournal "saved $Id absent")) { return }
  [BalenaMigrate.Firmware]::EnablePrivilege()
  $now = (Get-BmFirmwareVariable $Name).Value
  if ($null -eq $now) { return }
  if ((ConvertTo-BmHex $now) -ne (ConvertTo-BmHex ([Convert]::FromBase64String($Base64)))) {
    Write-BmLog "warning: $Name was changed by someone else since this step; left in place"
    return
  }
  [BalenaMigrate.Firmware]::Delete($Name, $BmEfiGlobal, 7)
}

# Sets BootNext to NUMBER after saving what it was, and reads it back.
function Set-BmBootNext([string]$Id, [int]$Number) {
  [BalenaMigrate.Firmware]::EnablePrivilege()
  if (-not ((Test-BmJournal "saved $Id existed") -or (Test-BmJournal "saved $Id absent"))) {
    $old = Get-BmFirmwareVariable 'BootNext'
    if ($null -ne $old.Value) {
      [System.IO.File]::WriteAllText((Join-Path $B "$Id.var"), "$($old.Attributes) $(ConvertTo-BmHex $old.Value)", $Utf8)
      Add-BmJournal "saved $Id existed"
    } else {
      Add-BmJournal "saved $Id absent"
    }
  }
  $want = [byte[]]@(($Number -band 0xff), (($Number -shr 8) -band 0xff))
  [BalenaMigrate.Firmware]::Set('BootNext', $BmEfiGlobal, $want, 7)
  $got = (Get-BmFirmwareVariable 'BootNext').Value
  if ((ConvertTo-BmHex $got) -ne (ConvertTo-BmHex $want)) { throw 'BootNext does not read back as written' }
}

function Undo-BmBootNext([string]$Id, [int]$Number) {
  [BalenaMigrate.Firmware]::EnablePrivilege()
  if (Test-BmJournal "saved $Id existed") {
    $saved = ([System.IO.File]::ReadAllText((Join-Path $B "$Id.var"), $Utf8)).Trim() -split ' '
    $bytes = [byte[]]@(for ($i = 0; $i -lt $saved[1].Length; $i += 2) { [Convert]::ToByte($saved[1].Substring($i, 2), 16) })
    [BalenaMigrate.Firmware]::Set('BootNext', $BmEfiGlobal, $bytes, [uint32]$saved[0])
  } elseif (Test-BmJournal "saved $Id absent") {
    $now = (Get-BmFirmwareVariable 'BootNext').Value
    $ours = [byte[]]@(($Number -band 0xff), (($Number -shr 8) -band 0xff))
    if ($null -ne $now -and (ConvertTo-BmHex $now) -eq (ConvertTo-BmHex $ours)) {
      [BalenaMigrate.Firmware]::Delete('BootNext', $BmEfiGlobal, 7)
    }
  }
}

# ---- the transaction ---------------------------------------------------------------------------

# Undoes every begun step, newest first; returns what could not be undone ('' when all was).
function Invoke-BmRollback {
  $errors = New-Object System.Collections.Generic.List[string]
  foreach ($i in Get-BmPendingSteps) {
    Write-BmLog "undo step $($i): $(Get-BmStepDescription $i)"
    try {
      Undo-BmStep $i
      Add-BmJournal "undone $i"
    } catch {
      $errors.Add("undo of step $i ($(Get-BmStepDescription $i)) failed: $($_.Exception.Message)")
      Write-BmLog "undo of step $i failed: $($_.Exception.Message)"
    }
  }
  Dismount-BmEsp
  return ($errors -join '; ')
}

# Undoes what an earlier transaction here began and never undid, with its own undo script.
function Complete-BmPrevious {
  if (@(Get-BmPendingSteps).Count -eq 0) { return '' }
  $jp = Get-BmJournalPlan
  Write-BmLog "the journal of plan $jp has steps that were not undone; undoing them first"
  if ($jp -eq $Plan) { return (Invoke-BmRollback) }
  if ((Test-Path -LiteralPath $U) -and (Select-String -LiteralPath $U -SimpleMatch -Quiet -Pattern "`$Plan = '$jp'")) {
    & powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $U -Locked 2>&1 |
      ForEach-Object { Write-BmLog "undo of plan $($jp): $_" }
    if ($LASTEXITCODE -eq 0) { return '' }
    return "the undo script of plan $jp failed (see $L)"
  }
  return "the journal belongs to plan $jp and its undo script is gone"
}

# The transaction itself: in the scheduled task (or in the foreground with -Foreground).
function Invoke-BmStepsMain {
  $err = Complete-BmPrevious
  if ($err) {
    Set-BmState 'rollback-failed' "an earlier transaction could not be undone: $err"
    return 2
  }
  try {
    if (Test-Path -LiteralPath $B) { Remove-Item -LiteralPath $B -Recurse -Force }
    $null = New-Item -ItemType Directory -Path $B
    Copy-Item -LiteralPath (Join-Path $W 'undo.ps1') -Destination "$U.tmp" -Force
    Move-Item -LiteralPath "$U.tmp" -Destination $U -Force
  } catch {
    Set-BmState 'rolled-back' "cannot prepare $B and $($U): $($_.Exception.Message); nothing was changed"
    return 1
  }
  if (Test-Path -LiteralPath $J) { Move-Item -LiteralPath $J -Destination "$J.prev" -Force }
  Add-BmJournal "plan $Plan"
  Set-BmState 'running' "applying $NSteps steps"
  $failed = 0
  $why = ''
  for ($i = 1; $i -le $NSteps; $i++) {
    Add-BmJournal "begin $i"
    Write-BmLog "step $($i): $(Get-BmStepDescription $i)"
    try {
      Invoke-BmStep $i
      Add-BmJournal "done $i"
    } catch {
      $failed = $i
      $why = "step $i ($(Get-BmStepDescription $i)) failed: $($_.Exception.Message)"
      break
    }
  }
  if ($failed -eq 0) {
    Dismount-BmEsp
    Set-BmState 'committed' "all $NSteps steps done"
    Write-BmLog "committed plan $Plan"
    return 0
  }
  Write-BmLog "$why; rolling back"
  Set-BmState 'rolling-back' $why
  $rollbackError = Invoke-BmRollback
  if (-not $rollbackError) {
    Set-BmState 'rolled-back' $why
    Write-BmLog 'rolled back'
    return 1
  }
  Set-BmState 'rollback-failed' "$why; and then: $rollbackError"
  Write-BmLog "rollback failed: $rollbackError"
  return 2
}

# Registers the one-shot scheduled task that runs apply.run.ps1 -Steps as SYSTEM, and starts it.
function Start-BmRunner {
  $exe = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
  $arguments = "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$RunScript`" -Steps"
  $action = New-ScheduledTaskAction -Execute $exe -Argument $arguments -WorkingDirectory $W
  $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
  $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries `
    -ExecutionTimeLimit (New-TimeSpan -Hours 2) -MultipleInstances IgnoreNew
  $null = Register-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName -Action $action -Principal $principal `
    -Settings $settings -Description 'balena-migrate boot setup (runs once, started by apply.ps1)' -Force
  Start-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName
}

function Remove-BmRunner {
  $task = Get-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName -ErrorAction SilentlyContinue
  if ($null -ne $task -and "$($task.State)" -ne 'Running') {
    Unregister-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName -Confirm:$false
  }
}

# apply.ps1: take the lock, refuse or resume by state, then start the runner detached.
function Invoke-BmApplyMain {
  if ($Steps) {
    if (-not (Enter-BmLock 60)) { Write-BmLog 'the runner could not take the lock within 60 s'; return 3 }
    try { return (Invoke-BmStepsMain) } finally { Dismount-BmEsp; Exit-BmLock }
  }
  if (-not (Enter-BmLock 10)) { [Console]::Error.WriteLine("another apply or undo is running in $W"); return 3 }
  try {
    $st = Get-BmStateLines
    if ($st[0] -eq 'committed' -and $st[1] -eq "plan $Plan") {
      Write-BmLog "plan $Plan is already committed; nothing to do"
      [Console]::Out.WriteLine('committed')
      return 0
    }
    if ($st[0] -eq 'rollback-failed' -or $st[0] -eq 'undo-failed') {
      [Console]::Error.WriteLine("the last transaction here ended $($st[0]) ($($st[2])): a human must look first")
      return 1
    }
    $undo = Join-Path $W 'undo.ps1'
    if (-not (Test-Path -LiteralPath $undo) -or -not (Select-String -LiteralPath $undo -SimpleMatch -Quiet -Pattern "`$Plan = '$Plan'")) {
      [Console]::Error.WriteLine("undo.ps1 of plan $Plan must be next to apply.ps1 before anything is changed")
      return 1
    }
    Set-BmState 'running' 'starting'
    Write-BmLog "starting plan $Plan"
    if ($Foreground) {
      try { return (Invoke-BmStepsMain) } finally { Dismount-BmEsp }
    }
    # The runner reads its own copy, so an upload of a new apply.ps1 cannot change a running script.
    try {
      Copy-Item -LiteralPath (Join-Path $W 'apply.ps1') -Destination "$RunScript.tmp" -Force
      Move-Item -LiteralPath "$RunScript.tmp" -Destination $RunScript -Force
    } catch {
      Set-BmState 'rolled-back' "cannot copy apply.ps1 to apply.run.ps1: $($_.Exception.Message); nothing was changed"
      return 1
    }
  } finally {
    Exit-BmLock
  }
  try {
    Start-BmRunner
  } catch {
    Set-BmState 'rolled-back' "cannot start the scheduled task: $($_.Exception.Message); nothing was changed"
    return 1
  }
  [Console]::Out.WriteLine('started')
  return 0
}

# undo.ps1: undo every begun step of the journal's plan; a second run finds nothing to do.
function Invoke-BmUndoMain {
  if (-not $Locked) {
    if (-not (Enter-BmLock 30)) {
      [Console]::Error.WriteLine("an apply or undo is still running in $W; try again when it has ended")
      return 3
    }
  }
  try {
    if (-not (Test-Path -LiteralPath $J)) { [Console]::Out.WriteLine("nothing to undo: no journal in $W"); return 0 }
    $jp = Get-BmJournalPlan
    if ($jp -ne $Plan) {
      if ((Test-Path -LiteralPath $U) -and (Select-String -LiteralPath $U -SimpleMatch -Quiet -Pattern "`$Plan = '$jp'")) {
        & powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $U -Locked
        return $LASTEXITCODE
      }
      [Console]::Error.WriteLine("the journal is for plan $jp, this undo.ps1 for plan $Plan, and the undo script of $jp is gone")
      return 1
    }
    $st = (Get-BmStateLines)[0]
    if (@(Get-BmPendingSteps).Count -eq 0) {
      if ($st -ne 'rolled-back' -and $st -ne 'undone') { Set-BmState 'undone' "nothing left to undo (was $st)" }
      Remove-BmRunner
      [Console]::Out.WriteLine("nothing to undo: $((Get-BmStateLines)[0])")
      return 0
    }
    Set-BmState 'undoing' "undoing (was $st)"
    Write-BmLog "undo.ps1: undoing plan $Plan (state was $st)"
    $err = Invoke-BmRollback
    if (-not $err) {
      Set-BmState 'undone' "undone by undo.ps1 (was $st)"
      Write-BmLog 'undone'
      Remove-BmRunner
      [Console]::Out.WriteLine('undone')
      return 0
    }
    Set-BmState 'undo-failed' $err
    Write-BmLog "undo failed: $err"
    [Console]::Error.WriteLine("undo failed: $err")
    return 1
  } finally {
    Dismount-BmEsp
    if (-not $Locked) { Exit-BmLock }
  }
}
