// Renders a Plan's steps into apply.sh and undo.sh: one journaled transaction on the host that
// finishes or rolls back on its own, detached from SSH. Pure: text out, nothing run here.
//
// Files in the work dir:
//   apply.sh, undo.sh   the two scripts (same functions, different entry point)
//   apply.run.sh        the copy of apply.sh the detached runner executes
//   apply.state         line 1 the state, line 2 `plan HASH`, line 3 the reason
//   apply.journal       `plan HASH`, then `begin N` / `saved ID existed|absent` / `done N` / `undone N`
//   apply.lock          flock(1) lock; the detached runner holds it until it ends
//   apply.log           what happened, with command output; apply.out: the runner's own stdout/stderr
//   backup/ID           the byte-exact copy of every file a step replaced
//   apply.undo.sh       the undo script of the plan the journal belongs to (kept for supersedes)
//
// States: running → committed, or running → rolling-back → rolled-back | rollback-failed;
// undo.sh: → undoing → undone | undo-failed. The state query adds `interrupted` for a
// `running`/`undoing` state whose process is gone (killed, host rebooted).
import { createHash } from 'node:crypto';
import { shellJoin, shellQuote } from '../ssh/quote.ts';
import type { ApplyStep, Plan } from './plan.ts';

export const APPLY_FILES = {
  apply: 'apply.sh',
  undo: 'undo.sh',
  state: 'apply.state',
  journal: 'apply.journal',
  lock: 'apply.lock',
  log: 'apply.log',
  out: 'apply.out',
  backup: 'backup',
  savedUndo: 'apply.undo.sh',
} as const;

export interface ApplyScripts {
  /** sha256 of the work dir and the steps: the identity of this transaction */
  planHash: string;
  /** apply.sh: starts the transaction detached and returns (see startApplyCommand) */
  apply: string;
  /** undo.sh: undoes every begun step from the journal; safe to run again */
  undo: string;
}

/** The identity of a transaction: same work dir and steps, same hash. */
export function planHash(plan: Pick<Plan, 'workDir' | 'steps'>): string {
  return createHash('sha256')
    .update(JSON.stringify({ workDir: plan.workDir, steps: plan.steps }))
    .digest('hex');
}

function octal(mode: number): string {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new Error(`bad file mode ${mode}`);
  return mode.toString(8).padStart(4, '0');
}

function assertAbsolute(path: string, what: string): void {
  if (!path.startsWith('/') || path.includes('\0'))
    throw new Error(`${what} must be an absolute path: ${path}`);
}

/** The shell functions `do_N` and `undo_N` for one step. */
function renderStep(step: ApplyStep, n: number): string {
  const q = shellQuote;
  switch (step.kind) {
    case 'mkdir': {
      assertAbsolute(step.path, 'mkdir path');
      return [
        `do_${n}() {`,
        `  p=${q(step.path)}`,
        '  if [ -d "$p" ]; then',
        `    jmark "saved ${n} existed"`,
        '    return 0',
        '  fi',
        `  jmark "saved ${n} absent"`,
        `  mkdir -m ${octal(step.mode)} "$p" || { REASON="cannot create $p"; return 1; }`,
        '}',
        `undo_${n}() {`,
        `  p=${q(step.path)}`,
        `  if jhas "saved ${n} absent" && [ -d "$p" ] && [ ! -L "$p" ]; then`,
        '    rmdir "$p" 2>/dev/null || log "warning: $p is not empty; left in place"',
        '  fi',
        '  return 0',
        '}',
      ].join('\n');
    }
    case 'copy': {
      assertAbsolute(step.from, 'copy source');
      assertAbsolute(step.to, 'copy target');
      const verify = step.sha256
        ? [
            '  h=$(sha256sum <"$n" | cut -d" " -f1)',
            `  if [ "$h" != ${q(step.sha256)} ]; then`,
            `    REASON="$f copied with sha256 $h, expected "${q(step.sha256)}`,
            '    rm -f "$n"',
            '    return 1',
            '  fi',
          ]
        : [];
      return [
        `do_${n}() {`,
        `  f=${q(step.from)}`,
        `  t=${q(step.to)}`,
        '  n="$t.balena-migrate-new"',
        '  [ -f "$f" ] || { REASON="$f is missing"; return 1; }',
        `  save ${n} "$t" || return 1`,
        `  cp "$f" "$n" && chmod ${octal(step.mode)} "$n" || { REASON="cannot copy $f to $n"; rm -f "$n"; return 1; }`,
        ...verify,
        '  mv -f "$n" "$t" || { REASON="cannot move $n to $t"; return 1; }',
        '}',
        `undo_${n}() {`,
        `  t=${q(step.to)}`,
        '  rm -f "$t.balena-migrate-new"',
        `  restore ${n} "$t"`,
        '}',
      ].join('\n');
    }
    case 'write': {
      assertAbsolute(step.path, 'write path');
      return [
        `do_${n}() {`,
        `  t=${q(step.path)}`,
        '  n="$t.balena-migrate-new"',
        `  save ${n} "$t" || return 1`,
        `  printf '%s' ${q(step.content)} >"$n" && chmod ${octal(step.mode)} "$n" ||`,
        '    { REASON="cannot write $n"; rm -f "$n"; return 1; }',
        '  mv -f "$n" "$t" || { REASON="cannot move $n to $t"; return 1; }',
        '}',
        `undo_${n}() {`,
        `  t=${q(step.path)}`,
        '  rm -f "$t.balena-migrate-new"',
        `  restore ${n} "$t"`,
        '}',
      ].join('\n');
    }
    case 'exec': {
      if (step.argv.length === 0) throw new Error(`step ${n} has an empty command`);
      const backups = step.backup ?? [];
      for (const p of backups) assertAbsolute(p, 'backup path');
      return [
        `do_${n}() {`,
        ...backups.map((p, i) => `  save ${n}.${i + 1} ${q(p)} || return 1`),
        `  run ${shellJoin(step.argv)} || { REASON="exit status $RC from "${q(shellJoin(step.argv))}; return 1; }`,
        '}',
        `undo_${n}() {`,
        '  ok=0',
        ...step.undo.map(
          (argv) =>
            `  run ${shellJoin(argv)} || { ok=1; REASON="exit status $RC from "${q(shellJoin(argv))}; }`,
        ),
        ...backups.map((p, i) => `  restore ${n}.${i + 1} ${q(p)} || ok=1`),
        '  return "$ok"',
        '}',
      ].join('\n');
    }
  }
}

/**
 * Shared by apply.sh and undo.sh: journal, state, backup and lock helpers, the main loops.
 * Written as `%{NAME}` where the shell has `${NAME}`, so the template does not interpolate.
 */
const LIBRARY = String.raw`
now() {
  date -u +%Y-%m-%dT%H:%M:%SZ 2>/dev/null
}

log() {
  printf '%s %s\n' "$(now)" "$*" >>"$L"
}

# set_state STATE [REASON]: atomically replace the state file.
set_state() {
  printf '%s\nplan %s\n%s\n' "$1" "$PLAN" "$(printf '%s' "%{2:-}" | tr '\n' ' ')" >"$S.tmp" &&
    mv -f "$S.tmp" "$S"
}

state_word() {
  if [ -f "$S" ]; then sed -n 1p "$S"; else echo absent; fi
}

state_plan() {
  sed -n 2p "$S" 2>/dev/null | sed 's/^plan //'
}

state_reason() {
  sed -n 3p "$S" 2>/dev/null
}

journal_plan() {
  sed -n 1p "$J" 2>/dev/null | sed 's/^plan //'
}

jmark() {
  printf '%s\n' "$1" >>"$J"
}

jhas() {
  [ -f "$J" ] && grep -qxF -- "$1" "$J"
}

# pending_steps: true when the journal has a begun step that was not undone.
pending_steps() {
  [ -f "$J" ] && awk '$1 == "begin" { b[$2] = 1 } $1 == "undone" { delete b[$2] }
    END { for (k in b) exit 0; exit 1 }' "$J"
}

# save ID PATH: keep PATH's bytes (or the fact that it did not exist) before a step changes it.
save() {
  if jhas "saved $1 existed" || jhas "saved $1 absent"; then return 0; fi
  if [ -d "$2" ] && [ ! -L "$2" ]; then
    REASON="$2 is a directory, not a file"
    return 1
  fi
  if [ -e "$2" ] || [ -L "$2" ]; then
    cp -P -p "$2" "$B/$1.tmp" && mv -f "$B/$1.tmp" "$B/$1" || {
      REASON="cannot back up $2"
      return 1
    }
    jmark "saved $1 existed"
  else
    jmark "saved $1 absent"
  fi
}

# restore ID PATH: put PATH back the way save found it (nothing to do if save never ran).
restore() {
  if jhas "saved $1 existed"; then
    if [ ! -e "$B/$1" ] && [ ! -L "$B/$1" ]; then
      REASON="the backup $B/$1 of $2 is missing"
      return 1
    fi
    cp -P -p "$B/$1" "$2.balena-migrate-old" && mv -f "$2.balena-migrate-old" "$2" || {
      REASON="cannot restore $2 from $B/$1"
      rm -f "$2.balena-migrate-old"
      return 1
    }
  elif jhas "saved $1 absent"; then
    if [ -e "$2" ] || [ -L "$2" ]; then
      rm -f "$2" || {
        REASON="cannot remove $2"
        return 1
      }
    fi
  fi
  return 0
}

# run CMD ARG...: run a step's command with its output in the log; RC is its exit status.
run() {
  log "run: $*"
  "$@" >>"$L" 2>&1 </dev/null
  RC=$?
  [ "$RC" = 0 ] || log "exit status $RC"
  return "$RC"
}

# rollback: undo every begun step, newest first; ROLLBACK_ERR says what could not be undone.
rollback() {
  ROLLBACK_ERR=
  i=$NSTEPS
  while [ "$i" -ge 1 ]; do
    if jhas "begin $i" && ! jhas "undone $i"; then
      REASON=
      log "undo step $i: $(desc "$i")"
      if "undo_$i"; then
        jmark "undone $i"
      else
        ROLLBACK_ERR="%{ROLLBACK_ERR:+$ROLLBACK_ERR; }undo of step $i ($(desc "$i")) failed: %{REASON:-see $L}"
        log "undo of step $i failed: %{REASON:-}"
      fi
    fi
    i=$((i - 1))
  done
  sync
  [ -z "$ROLLBACK_ERR" ]
}

# finish_previous: undo what an earlier transaction here began and never undid (it was
# killed, or it is being replaced by a new plan), with the undo script of its own plan.
finish_previous() {
  ROLLBACK_ERR=
  pending_steps || return 0
  jp=$(journal_plan)
  log "the journal of plan $jp has steps that were not undone; undoing them first"
  if [ "$jp" = "$PLAN" ]; then
    rollback
    return
  fi
  if [ -f "$U" ] && grep -qxF "PLAN=$jp" "$U"; then
    BM_LOCKED=1 sh "$U" >>"$L" 2>&1 && return 0
    ROLLBACK_ERR="the undo script of plan $jp failed (see $L)"
    return 1
  fi
  ROLLBACK_ERR="the journal belongs to plan $jp and its undo script is gone"
  return 1
}

# The transaction itself, in the detached runner (or in the foreground with --foreground).
steps_main() {
  trap 'INTERRUPTED=1' INT TERM
  trap '' HUP
  if ! finish_previous; then
    set_state rollback-failed "an earlier transaction could not be undone: $ROLLBACK_ERR"
    exit 2
  fi
  rm -rf "$B" && mkdir "$B" && cp "$W/undo.sh" "$U.tmp" && mv -f "$U.tmp" "$U" || {
    set_state rolled-back "cannot prepare $B and $U; nothing was changed"
    exit 1
  }
  if [ -f "$J" ]; then mv -f "$J" "$J.prev"; fi
  jmark "plan $PLAN"
  set_state running "applying $NSTEPS steps"
  failed=
  i=1
  while [ "$i" -le "$NSTEPS" ]; do
    if [ -n "$INTERRUPTED" ]; then
      REASON="stopped by a signal before it began"
      failed=$i
      break
    fi
    jmark "begin $i"
    log "step $i: $(desc "$i")"
    REASON=
    if "do_$i"; then
      jmark "done $i"
    else
      failed=$i
      break
    fi
    i=$((i + 1))
  done
  if [ -z "$failed" ]; then
    sync
    set_state committed "all $NSTEPS steps done"
    log "committed plan $PLAN"
    exit 0
  fi
  why="step $failed ($(desc "$failed")) failed: %{REASON:-see $L}"
  log "$why; rolling back"
  set_state rolling-back "$why"
  if rollback; then
    set_state rolled-back "$why"
    log "rolled back"
    exit 1
  fi
  set_state rollback-failed "$why; and then: $ROLLBACK_ERR"
  log "rollback failed: $ROLLBACK_ERR"
  exit 2
}

# apply.sh: take the lock, refuse or resume by state, then start the runner detached. The
# runner inherits the lock (fd 9) and keeps it until it ends, even after this shell exits.
apply_main() {
  if [ "%{1:-}" = --steps ]; then
    steps_main
  fi
  exec 9>>"$K" || {
    echo "cannot open the lock $K" >&2
    exit 1
  }
  if ! flock -w 10 9; then
    echo "another apply or undo is running in $W" >&2
    exit 3
  fi
  st=$(state_word)
  if [ "$st" = committed ] && [ "$(state_plan)" = "$PLAN" ]; then
    log "plan $PLAN is already committed; nothing to do"
    echo committed
    exit 0
  fi
  case $st in
  rollback-failed | undo-failed)
    echo "the last transaction here ended $st ($(state_reason)): a human must look first" >&2
    exit 1
    ;;
  esac
  if [ ! -f "$W/undo.sh" ] || ! grep -qxF "PLAN=$PLAN" "$W/undo.sh"; then
    echo "undo.sh of plan $PLAN must be next to apply.sh before anything is changed" >&2
    exit 1
  fi
  set_state running "starting"
  log "starting plan $PLAN"
  if [ "%{1:-}" = --foreground ]; then
    steps_main
  fi
  # The runner reads its own copy, so an upload of a new apply.sh cannot change a running script.
  cp "$W/apply.sh" "$W/apply.run.sh.tmp" && mv -f "$W/apply.run.sh.tmp" "$W/apply.run.sh" || {
    set_state rolled-back "cannot copy apply.sh to apply.run.sh; nothing was changed"
    exit 1
  }
  setsid sh "$W/apply.run.sh" --steps </dev/null >>"$W/apply.out" 2>&1 &
  echo "$!" >"$W/apply.pid"
  echo started
  exit 0
}

# undo.sh: undo every begun step of the journal's plan; a second run finds nothing to do.
undo_main() {
  if [ "%{BM_LOCKED:-}" != 1 ]; then
    exec 9>>"$K" || {
      echo "cannot open the lock $K" >&2
      exit 1
    }
    if ! flock -w 30 9; then
      echo "an apply or undo is still running in $W; try again when it has ended" >&2
      exit 3
    fi
  fi
  if [ ! -f "$J" ]; then
    echo "nothing to undo: no journal in $W"
    exit 0
  fi
  jp=$(journal_plan)
  if [ "$jp" != "$PLAN" ]; then
    if [ -f "$U" ] && grep -qxF "PLAN=$jp" "$U"; then
      BM_LOCKED=1
      export BM_LOCKED
      exec sh "$U"
    fi
    echo "the journal is for plan $jp, this undo.sh for plan $PLAN, and the undo script of $jp is gone" >&2
    exit 1
  fi
  st=$(state_word)
  if ! pending_steps; then
    case $st in
    rolled-back | undone) ;;
    *) set_state undone "nothing left to undo (was $st)" ;;
    esac
    echo "nothing to undo: $(state_word)"
    exit 0
  fi
  set_state undoing "undoing (was $st)"
  log "undo.sh: undoing plan $PLAN (state was $st)"
  if rollback; then
    set_state undone "undone by undo.sh (was $st)"
    log "undone"
    echo undone
    exit 0
  fi
  set_state undo-failed "$ROLLBACK_ERR"
  log "undo failed: $ROLLBACK_ERR"
  echo "undo failed: $ROLLBACK_ERR" >&2
  exit 1
}
`.replaceAll('%{', '${');

function renderScript(plan: Pick<Plan, 'workDir' | 'steps'>, hash: string, entry: 'apply' | 'undo'): string {
  assertAbsolute(plan.workDir, 'the work dir');
  const q = shellQuote;
  const steps = plan.steps.map((s, i) => renderStep(s, i + 1));
  const desc = [
    'desc() {',
    '  case $1 in',
    ...plan.steps.map((s, i) => `  ${i + 1}) printf '%s' ${q(s.description)} ;;`),
    '  esac',
    '}',
  ];
  const usage =
    entry === 'apply'
      ? [
          '# apply.sh: takes the lock and starts the transaction detached (setsid, stdin /dev/null,',
          '# output to apply.out), then returns; --foreground runs it in this shell instead.',
        ]
      : ['# undo.sh: undoes every step the journal says was begun, newest first; idempotent.'];
  return [
    '#!/bin/sh',
    '# balena-migrate boot setup transaction. Generated from the plan; do not edit.',
    '# do_N/undo_N run by name; `a && b || c` means "c if either failed"; quoted text is data.',
    '# shellcheck disable=SC2015,SC2016,SC2317',
    ...usage,
    'set -u',
    'umask 077',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'LC_ALL=C',
    'export PATH LC_ALL',
    'cd / || exit 1',
    '',
    `W=${q(plan.workDir)}`,
    `PLAN=${hash}`,
    `NSTEPS=${plan.steps.length}`,
    `J="$W/${APPLY_FILES.journal}"`,
    `S="$W/${APPLY_FILES.state}"`,
    `L="$W/${APPLY_FILES.log}"`,
    `B="$W/${APPLY_FILES.backup}"`,
    `K="$W/${APPLY_FILES.lock}"`,
    `U="$W/${APPLY_FILES.savedUndo}"`,
    'REASON=',
    'ROLLBACK_ERR=',
    'RC=0',
    'INTERRUPTED=',
    '',
    ...desc,
    '',
    steps.join('\n\n'),
    LIBRARY,
    entry === 'apply' ? 'apply_main "$@"' : 'undo_main "$@"',
    '',
  ].join('\n');
}

/** Renders apply.sh and undo.sh for a plan (only its work dir and steps matter). */
export function renderApplyScripts(plan: Pick<Plan, 'workDir' | 'steps'>): ApplyScripts {
  const hash = planHash(plan);
  return { planHash: hash, apply: renderScript(plan, hash, 'apply'), undo: renderScript(plan, hash, 'undo') };
}

/** Starts the transaction; returns at once, the runner goes on detached from the SSH session. */
export function startApplyCommand(workDir: string): string {
  return `sh ${shellQuote(`${workDir}/${APPLY_FILES.apply}`)}`;
}

/**
 * Prints the transaction state: line 1 the state (absent, running, rolling-back, committed,
 * rolled-back, rollback-failed, undoing, undone, undo-failed, or interrupted when a running
 * state has lost its process), line 2 `plan HASH`, line 3 the reason.
 */
export function applyStateCommand(workDir: string): string {
  const w = shellQuote(workDir);
  const script = [
    `W=${w}`,
    `S="$W/${APPLY_FILES.state}"`,
    'if [ ! -f "$S" ]; then echo absent; exit 0; fi',
    'st=$(sed -n 1p "$S")',
    'case $st in running | rolling-back | undoing)',
    `  if (exec 9>>"$W/${APPLY_FILES.lock}" && flock -n -s 9) 2>/dev/null; then`,
    '    echo interrupted; sed -n 2p "$S"',
    '    echo "the process that was $st is gone (killed, or the host rebooted): run undo.sh"',
    '    exit 0',
    '  fi ;;',
    'esac',
    'cat "$S"',
  ].join('\n');
  return shellJoin(['sh', '-c', script]);
}

export interface ApplyStatus {
  state: string;
  planHash: string | null;
  reason: string;
}

/** Reads what applyStateCommand printed. */
export function parseApplyState(stdout: string): ApplyStatus {
  const [state = 'absent', plan = '', ...rest] = stdout.replace(/\n$/, '').split('\n');
  const m = /^plan ([0-9a-f]{64})$/.exec(plan.trim());
  return { state: state.trim() || 'absent', planHash: m ? m[1]! : null, reason: rest.join('\n').trim() };
}

/** Undoes the transaction from its journal (waits up to 30 s for a running one); idempotent. */
export function undoCommand(workDir: string): string {
  const u = shellQuote(`${workDir}/${APPLY_FILES.undo}`);
  return shellJoin(['sh', '-c', `if [ -f ${u} ]; then exec sh ${u}; fi; echo 'nothing to undo: no undo.sh'`]);
}
