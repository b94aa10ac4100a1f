#!/bin/sh
# balena-migrate probe: prints what the planner needs to know about this host, and changes
# nothing (no files written, nothing mounted, nothing loaded).
#
# Usage (as root):  sh probe.sh WORKDIR
#
# Runs under dash, bash and busybox ash. Output, one fact per line:
#
#   KEY<TAB>VALUE                      a scalar; list keys repeat
#   KEY<TAB>f1=v1<TAB>f2=v2...         a record (blockdev, mount, dir)
#
# In values and field values a backslash starts an escape: \\ \t \n \r, or \NNN (three octal
# digits, the form the kernel uses in /proc/self/mounts). An empty field means "unknown".
# The last line is `end<TAB>ok`; without it the output is truncated.
#
# It runs once per host of a fleet, so it keeps forks down: files are read with `read`, not
# `$(cat)`, values are only sent through the escaping pipeline when they need it, and helpers
# set variables instead of printing into `$(...)`. (Every `$(...)` is a fork; the first version
# forked ~400 times, ~0.12 s of CPU per host.)

LC_ALL=C
export LC_ALL
PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export PATH

TAB=$(printf '\t')
CR=$(printf '\r')
NL='
'
WORKDIR=${1:-}
# BM_SYSROOT=DIR (`check --sysroot`): read the files of a directory tree (a copy or a mounted
# image of a host) instead of this machine's, with /proc and /sys as plain files in it. What
# only a live kernel knows (block devices, mounts, where each directory lives, network) is not
# probed: the tree's sidecar file .balena-migrate-sysroot says it, in this output's format.
R=${BM_SYSROOT:-}

# esc VALUE: print VALUE with \ TAB CR NL escaped (no trailing newline).
esc() {
  case $1 in
  *\\* | *"$TAB"* | *"$NL"* | *"$CR"*)
    printf '%s\n' "$1" | sed -e 's/\\/\\\\/g' -e "s/$TAB/\\\\t/g" -e "s/$CR/\\\\r/g" |
      awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }'
    ;;
  *) printf '%s' "$1" ;;
  esac
}

# emit KEY VALUE: one scalar line.
emit() {
  case $2 in
  *\\* | *"$TAB"* | *"$NL"* | *"$CR"*) printf '%s\t%s\n' "$1" "$(esc "$2")" ;;
  *) printf '%s\t%s\n' "$1" "$2" ;;
  esac
}

# recline KEY NAME=VALUE...: REC set to a record line (no newline), every value escaped.
recline() {
  REC=$1
  shift
  for rec_f in "$@"; do
    rec_v=${rec_f#*=}
    case $rec_v in
    *\\* | *"$TAB"* | *"$NL"* | *"$CR"*) rec_v=$(esc "$rec_v") ;;
    esac
    REC="$REC$TAB${rec_f%%=*}=$rec_v"
  done
}

# rec KEY NAME=VALUE...: one record line, every value escaped.
rec() {
  recline "$@"
  printf '%s\n' "$REC"
}

# rd FILE: the content of a readable file, or nothing.
rd() {
  [ -r "$1" ] && cat "$1" 2>/dev/null
}

# rdv VAR FILE: the first line of a readable one-line file (sysfs, procfs) into VAR, without
# a fork; empty when the file is missing or unreadable.
rdv() {
  eval "$1="
  [ -r "$2" ] || return 0
  { IFS= read -r "$1" <"$2" || :; } 2>/dev/null
}

# have CMD: the path of a command, or nothing (status 1).
have() {
  command -v "$1" 2>/dev/null
}
if [ -n "$R" ]; then
  # In a sysroot, a command is there when the tree has it in a standard directory.
  have() {
    for have_d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
      if [ -x "$R$have_d/$1" ]; then
        printf '%s\n' "$have_d/$1"
        return 0
      fi
    done
    return 1
  }
fi

# first_of CMD...: FIRST set to the path of the first command that exists (status 1: none).
first_of() {
  FIRST=
  for first_c in "$@"; do
    if have "$first_c" >/dev/null; then
      FIRST=$(have "$first_c")
      return 0
    fi
  done
  return 1
}

# realdir PATH: REAL set to the canonical directory PATH leads to (empty: none), without a
# fork: `cd -P` resolves it, and the shell's directory is restored.
realdir() {
  REAL=
  realdir_here=$PWD
  if cd -P "$1" 2>/dev/null; then REAL=$PWD; fi
  cd "$realdir_here" 2>/dev/null || cd /
}

# modname LINK: MOD set to the name of the kernel module a sysfs `driver/module` link points to.
modname() {
  realdir "$1"
  MOD=${REAL##*/}
}

# flag CONDITION...: FLAG set to 1 when the test command succeeds, else 0.
flag() {
  if "$@" >/dev/null 2>&1; then FLAG=1; else FLAG=0; fi
}

# Everything runs inside main with stdin from /dev/null: the orchestrator feeds this script
# to `sh -s` on stdin, and no command in here may eat the rest of it.
main() {
  # Set by rdv (through eval, which shellcheck cannot follow).
  cmdline='' mm='' ro='' dm_uuid='' dm_name='' dmn='' xdm=''
  ntype='' oper='' mac='' wstate='' wid='' wto='' comm=''
  lrole='' lpath='' LOC_DEV_root=''
  emit probe_version 1

  # ---- identity --------------------------------------------------------------------------------
  rdv h "$R/proc/sys/kernel/hostname"
  [ -n "$h" ] || [ -z "$R" ] || rdv h "$R/etc/hostname"
  [ -n "$h" ] || h=$(uname -n)
  emit hostname "$h"
  [ -n "$R" ] || emit arch "$(uname -m)"

  osr=$R/etc/os-release
  [ -r "$osr" ] || osr=$R/usr/lib/os-release
  if [ -r "$osr" ]; then
    while IFS= read -r l || [ -n "$l" ]; do
      case $l in '' | '#'*) continue ;; esac
      emit os_release "$l"
    done <"$osr"
  fi

  # ---- kernel ------------------------------------------------------------------------------------
  rdv rel "$R/proc/sys/kernel/osrelease"
  [ -n "$rel" ] || rel=$(uname -r)
  emit kernel_release "$rel"
  for d in "/lib/modules/$rel" "/usr/lib/modules/$rel"; do
    if [ -d "$R$d" ]; then
      emit kernel_modules_dir "$d"
      break
    fi
  done
  if [ -f "$R/boot/vmlinuz-$rel" ]; then
    emit kernel_image "/boot/vmlinuz-$rel"
    emit kernel_image_size "$(wc -c <"$R/boot/vmlinuz-$rel" | tr -d ' ')"
    # an x86 kernel built with the EFI stub starts with the PE/COFF "MZ": firmware can run it
    case $(head -c 2 "$R/boot/vmlinuz-$rel" 2>/dev/null) in
    MZ) emit kernel_image_efi_stub 1 ;;
    *) emit kernel_image_efi_stub 0 ;;
    esac
  fi
  rdv cmdline "$R/proc/cmdline"
  emit kernel_cmdline "$cmdline"

  # ---- firmware ----------------------------------------------------------------------------------
  if [ -d "$R/sys/firmware/efi" ]; then
    emit firmware uefi
  elif [ -d "$R/sys/firmware/devicetree/base" ] || [ -d "$R/proc/device-tree" ]; then
    emit firmware devicetree
  else
    emit firmware bios
  fi
  # SecureBoot: the variable's last byte is 1 when enforcing (efivarfs puts 4 attribute bytes first).
  sb=
  for v in "$R/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c" \
    "$R/sys/firmware/efi/vars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c/data"; do
    if [ -r "$v" ]; then
      sb=$(od -An -v -tu1 "$v" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) last = $i } END { print last }')
      break
    fi
  done
  case $sb in 0 | 1) emit secure_boot "$sb" ;; esac

  # ---- hardware ----------------------------------------------------------------------------------
  for k in sys_vendor product_name board_name; do
    rdv v "$R/sys/class/dmi/id/$k"
    [ -n "$v" ] && emit "dmi_$k" "$v"
  done
  dt=$R/sys/firmware/devicetree/base
  [ -d "$dt" ] || dt=$R/proc/device-tree
  if [ -r "$dt/model" ]; then
    emit dt_model "$(tr -d '\000' <"$dt/model")"
  fi
  if [ -r "$dt/compatible" ]; then
    tr '\000' '\n' <"$dt/compatible" | while IFS= read -r c; do
      [ -n "$c" ] && emit dt_compatible "$c"
    done
  fi
  # One pass over /proc/cpuinfo: the CPU model (the first "model name", "Model", "Hardware" or
  # "cpu model" line) and, for the Raspberry Pi, the board revision code (which model, whatever
  # the OS calls it; arm64 kernels without the cpuinfo line have it in the device tree) and the
  # SoC name. The Pi 4 bootloader's build time below says whether it knows the tryboot one-shot.
  cpu='' cpu_rev='' cpu_hw=''
  if [ -r "$R/proc/cpuinfo" ]; then
    while IFS= read -r l; do
      case $l in *:*) ;; *) continue ;; esac
      ck=${l%%:*}
      ck=${ck%"${ck##*[! "$TAB"]}"}
      case $ck in
      'model name' | Model | Hardware | 'cpu model')
        if [ -z "$cpu" ]; then
          cpu=${l#*:}
          cpu=${cpu#"${cpu%%[! "$TAB"]*}"}
        fi
        ;;
      esac
      case $l in
      Revision*:*) [ -n "$cpu_rev" ] || cpu_rev=${l#*: } ;;
      Hardware*:*) [ -n "$cpu_hw" ] || cpu_hw=${l#*: } ;;
      esac
    done <"$R/proc/cpuinfo"
  fi
  [ -n "$cpu" ] && emit cpu_model "$cpu"
  [ -n "$cpu_rev" ] && emit cpu_revision "$cpu_rev"
  [ -n "$cpu_hw" ] && emit cpu_hardware "$cpu_hw"
  if [ -r "$dt/system/linux,revision" ]; then
    emit dt_revision "$(od -An -v -tx1 "$dt/system/linux,revision" | tr -d ' \n')"
  fi
  if [ -r "$dt/chosen/bootloader/build-timestamp" ]; then
    emit bootloader_timestamp "$(od -An -v -tu1 "$dt/chosen/bootloader/build-timestamp" |
      awk '{ for (i = 1; i <= NF; i++) n = n * 256 + $i } END { printf "%.0f", n }')"
  fi
  mem_total='' mem_available='' mem_free=''
  if [ -r "$R/proc/meminfo" ]; then
    while read -r mk mv _; do
      case $mk in
      MemTotal:) [ -n "$mem_total" ] || mem_total=$mv ;;
      MemAvailable:) [ -n "$mem_available" ] || mem_available=$mv ;;
      MemFree:) [ -n "$mem_free" ] || mem_free=$mv ;;
      esac
    done <"$R/proc/meminfo"
  fi
  [ -n "$mem_total" ] && emit mem_total_kb "$mem_total"
  [ -n "$mem_available" ] && emit mem_available_kb "$mem_available"
  [ -n "$mem_free" ] && emit mem_free_kb "$mem_free"

  # ---- block devices -----------------------------------------------------------------------------
  # How filesystem identities are read: util-linux blkid, else lsblk, else the udev database,
  # else busybox blkid (UUID/LABEL/TYPE only).
  if [ -n "$R" ]; then
    idtool=sysroot
  elif case $(blkid -V 2>/dev/null) in *util-linux*) true ;; *) false ;; esac; then
    idtool=blkid
  elif have lsblk >/dev/null; then
    idtool=lsblk
  elif [ -d /run/udev/data ]; then
    idtool=udev
  elif have blkid >/dev/null; then
    idtool=busybox-blkid
  else
    idtool=none
  fi
  emit id_tool "$idtool"
  [ "$idtool" = none ] && emit warning "no blkid, lsblk or udev database: filesystem UUIDs and labels are unknown"

  # ident DEV MAJMIN TAG: one identity tag (UUID PARTUUID LABEL TYPE PTTYPE) of /dev/DEV.
  ident() {
    case $idtool in
    blkid)
      if [ -b "/dev/$1" ]; then
        t=$(blkid -o value -s "$3" "/dev/$1" 2>/dev/null)
        printf '%s' "${t%%"$NL"*}"
      fi
      ;;
    lsblk)
      case $3 in TYPE) t=FSTYPE ;; *) t=$3 ;; esac
      [ -b "/dev/$1" ] && lsblk -dno "$t" "/dev/$1" 2>/dev/null | head -n 1 | sed 's/ *$//'
      ;;
    udev)
      case $3 in
      UUID) t=ID_FS_UUID ;; PARTUUID) t=ID_PART_ENTRY_UUID ;; LABEL) t=ID_FS_LABEL ;;
      TYPE) t=ID_FS_TYPE ;; PTTYPE) t=ID_PART_TABLE_TYPE ;;
      esac
      sed -n "s/^E:$t=//p" "/run/udev/data/b$2" 2>/dev/null | head -n 1
      ;;
    busybox-blkid)
      case $3 in UUID | LABEL | TYPE) ;; *) return 0 ;; esac
      [ -b "/dev/$1" ] && blkid "/dev/$1" 2>/dev/null | sed -n "s/.*[: ]$3=\"\\([^\"]*\\)\".*/\\1/p" | head -n 1
      ;;
    esac
  }

  # Lines "MAJ:MIN NAME" for every block device, to find the device behind a mount.
  majmin_map=$NL
  for p in "$R"/sys/class/block/*; do
    [ -e "$p/dev" ] || continue
    n=${p##*/}
    rdv mm "$p/dev"
    majmin_map="$majmin_map$mm $n$NL"
    rdv sectors "$p/size"
    size=$((${sectors:-0} * 512))
    parent=
    partn=
    if [ -e "$p/partition" ]; then
      type=part
      rdv partn "$p/partition"
      # A partition's sysfs directory sits inside its disk's: find that disk by globbing.
      for q in /sys/class/block/*/"$n"; do
        [ -e "$q/partition" ] || continue
        parent=${q%/*}
        parent=${parent##*/}
        break
      done
      rdv removable "/sys/class/block/$parent/removable"
    else
      case $n in
      sr* | fd* | *boot[0-9] | *rpmb) type=other ;;
      *) if [ -e "$p/device" ]; then type=disk; else type=other; fi ;;
      esac
      rdv removable "$p/removable"
    fi
    uuid='' partuuid='' label='' fstype='' pttype=''
    case $n in sr* | fd* | ram*) size_probe=0 ;; *) size_probe=$size ;; esac
    if [ "$size_probe" -gt 0 ] && [ "$idtool" = blkid ]; then
      # One blkid run for every tag. Its export form escapes whatever is not plain ASCII, so
      # a value with any other character is asked for again, raw, with -o value.
      XOUT=
      [ -b "/dev/$n" ] && XOUT=$(blkid -o export "/dev/$n" 2>/dev/null)
      for tag in UUID LABEL TYPE PARTUUID PTTYPE; do
        case $tag:$type in PARTUUID:part | PTTYPE:disk | PTTYPE:other) ;; PARTUUID:* | PTTYPE:*) continue ;; esac
        XV=
        case $NL$XOUT in
        *"$NL$tag="*)
          XV=$NL$XOUT
          XV=${XV#*"$NL$tag="}
          XV=${XV%%"$NL"*}
          case $XV in *[!A-Za-z0-9._:-]*) XV=$(ident "$n" "$mm" "$tag") ;; esac
          ;;
        esac
        case $tag in
        UUID) uuid=$XV ;; LABEL) label=$XV ;; TYPE) fstype=$XV ;; PARTUUID) partuuid=$XV ;; PTTYPE) pttype=$XV ;;
        esac
      done
    elif [ "$size_probe" -gt 0 ]; then
      uuid=$(ident "$n" "$mm" UUID)
      label=$(ident "$n" "$mm" LABEL)
      fstype=$(ident "$n" "$mm" TYPE)
      if [ "$type" = part ]; then
        partuuid=$(ident "$n" "$mm" PARTUUID)
      else
        pttype=$(ident "$n" "$mm" PTTYPE)
      fi
    fi
    rdv ro "$p/ro"
    rdv dm_uuid "$p/dm/uuid"
    rdv dm_name "$p/dm/name"
    rec blockdev "name=$n" "type=$type" "parent=$parent" "size=$size" "partn=$partn" \
      "pttype=$pttype" "removable=${removable:-0}" "ro=$ro" "majmin=$mm" \
      "uuid=$uuid" "partuuid=$partuuid" "label=$label" "fstype=$fstype" \
      "dm_uuid=$dm_uuid" "dm_name=$dm_name"
  done

  # ---- mounts ------------------------------------------------------------------------------------
  # Fields stay in the kernel's octal-escaped form, which the parser decodes.
  [ -r "$R/proc/self/mounts" ] &&
    awk -v OFS='\t' '{ print "mount", "source=" $1, "target=" $2, "fstype=" $3, "options=" $4 }' "$R/proc/self/mounts"

  # mounts_of: for each of BM_LOC0..BM_LOC<BM_LOC_N - 1> (canonical directories), a line
  # "m MAJ:MIN FSROOT MOUNTPOINT OPTIONS FSTYPE SOURCE" (kernel-escaped) of the mount holding
  # it: the longest mount point that contains it, the later one on ties (over-mounts). One awk
  # for all the directories of a probe, not one each.
  mounts_of() {
    awk '
      function unoct(s,   out, i, c) {
        out = ""
        while ((i = index(s, "\\")) > 0) {
          out = out substr(s, 1, i - 1)
          c = substr(s, i + 1, 3)
          if (c ~ /^[0-7][0-7][0-7]$/) {
            out = out sprintf("%c", substr(c, 1, 1) * 64 + substr(c, 2, 1) * 8 + substr(c, 3, 1))
            s = substr(s, i + 4)
          } else {
            out = out "\\"
            s = substr(s, i + 1)
          }
        }
        return out s
      }
      BEGIN {
        n = ENVIRON["BM_LOC_N"] + 0
        for (k = 0; k < n; k++) { p[k] = ENVIRON["BM_LOC" k]; best[k] = ""; bestlen[k] = -1 }
      }
      {
        mp = unoct($5)
        for (i = 7; i <= NF && $i != "-"; i++) ;
        for (k = 0; k < n; k++) {
          if (mp == "/" || p[k] == mp || substr(p[k], 1, length(mp) + 1) == mp "/") {
            if (length(mp) >= bestlen[k]) {
              bestlen[k] = length(mp)
              best[k] = $3 " " $4 " " $5 " " $6 " " $(i + 1) " " $(i + 2)
            }
          }
        }
      }
      END { for (k = 0; k < n; k++) print "m " best[k] }
    ' /proc/self/mountinfo
  }

  # dev_of MAJMIN SOURCE: DEV set to the kernel name of the block device behind a mount, or
  # nothing.
  dev_of() {
    DEV=
    case ${1:+x}$majmin_map in
    x*"$NL$1 "*)
      DEV=${majmin_map#*"$NL$1 "}
      DEV=${DEV%%"$NL"*}
      ;;
    esac
    if [ -z "$DEV" ]; then
      # btrfs and friends report an anonymous device number: fall back to the mount source.
      s=${2##*/}
      if [ -n "$s" ] && [ -e "/sys/class/block/$s" ]; then
        DEV=$s
      else
        for dm in /sys/class/block/dm-*; do
          [ -r "$dm/dm/name" ] || continue
          rdv dmn "$dm/dm/name"
          [ "$dmn" = "$s" ] && DEV=${dm##*/} && break
        done
      fi
    fi
  }

  # locate ROLE PATH [ROLE PATH...]: a dir record per pair: which filesystem holds PATH (or its
  # nearest existing ancestor), free space, writability. All pairs share one awk and one df.
  # Sets LOC_DEV, LOC_FSTYPE and LOC_SRC for the last pair, and LOC_DEV_<ROLE> for each.
  locate() {
    loc_n=0
    while [ $# -ge 2 ]; do
      lp=$2
      exists=1
      while [ ! -e "$lp" ] && [ ! -L "$lp" ]; do
        exists=0
        case $lp in */*) lp=${lp%/*} ;; *) lp=. ;; esac
        [ -n "$lp" ] || lp=/
      done
      [ -d "$lp" ] || lp=${lp%/*}
      [ -n "$lp" ] || lp=/
      # the canonical directory without a fork: `cd -P` sets PWD to it
      realdir "$lp"
      real=${REAL:-$lp}
      eval "loc_role$loc_n=\$1 loc_path$loc_n=\$2 loc_exists$loc_n=\$exists loc_lp$loc_n=\$lp"
      eval "BM_LOC$loc_n=\$real; export BM_LOC$loc_n"
      loc_n=$((loc_n + 1))
      shift 2
    done
    BM_LOC_N=$loc_n
    export BM_LOC_N
    k=0
    while read -r mline; do
      eval "loc_m$k=\$mline"
      k=$((k + 1))
    done <<EOF
$(mounts_of)
EOF
    # free space: one df for all; its lines follow the arguments unless one of them failed
    set --
    k=0
    while [ "$k" -lt "$loc_n" ]; do
      eval "set -- \"\$@\" \"\$loc_lp$k\""
      k=$((k + 1))
    done
    k=-1
    while read -r _ _ _ avail _; do
      [ "$k" -ge 0 ] && eval "loc_free$k=\$avail"
      k=$((k + 1))
    done <<EOF
$(df -P -k "$@" 2>/dev/null)
EOF
    df_ok=0
    [ "$k" = "$loc_n" ] && df_ok=1
    k=0
    while [ "$k" -lt "$loc_n" ]; do
      eval "lrole=\$loc_role$k lpath=\$loc_path$k exists=\$loc_exists$k lp=\$loc_lp$k real=\$BM_LOC$k mline=\${loc_m$k:-}"
      unset "BM_LOC$k"
      set -f
      # shellcheck disable=SC2086
      set -- ${mline#m}
      set +f
      dev_of "${1:-}" "${6:-}"
      LOC_DEV=$DEV
      LOC_FSTYPE=${5:-}
      LOC_SRC=${6:-}
      eval "LOC_DEV_$lrole=\$DEV"
      if [ "$df_ok" = 1 ]; then
        eval "free_kb=\$loc_free$k"
      else
        free_kb=$(df -P -k "$lp" 2>/dev/null | {
          read -r _ || exit 0
          read -r _ _ _ avail _ && printf '%s' "$avail"
        })
      fi
      w=1
      [ -w "$lp" ] || w=0
      case ",${4:-}," in *,ro,*) w=0 ;; esac
      # mountpoint, fsroot and source are printed as the kernel escaped them.
      recline dir "role=$lrole" "path=$lpath" "exists=$exists" "probed=$real"
      printf '%s\tmountpoint=%s\tfsroot=%s\tdevice=%s\tfstype=%s\tsource=%s\tfree_kb=%s\twritable=%s\n' \
        "$REC" "${3:-}" "${2:-}" "$LOC_DEV" "${5:-}" "${6:-}" "${free_kb:-0}" "$w"
      k=$((k + 1))
    done
    unset BM_LOC_N
  }

  root_dev=
  if [ -z "$R" ]; then
    set -- root / boot /boot
    [ -n "$WORKDIR" ] && set -- "$@" work "$WORKDIR"
    # the Raspberry Pi firmware's partition (bookworm and Ubuntu), a u-boot board's FAT partition
    [ -d /boot/firmware ] && set -- "$@" firmware /boot/firmware
    [ -d /boot/uboot ] && set -- "$@" uboot /boot/uboot
    locate "$@"
    root_dev=$LOC_DEV_root
  fi

  # ---- storage drivers of the root disk ------------------------------------------------------------
  # disks_of NAME: the whole disks under a block device (partition parent, dm/md slaves).
  disks_of() {
    if [ -e "/sys/class/block/$1/partition" ]; then
      realdir "/sys/class/block/$1/.."
      (disks_of "${REAL##*/}")
      return
    fi
    found_slave=0
    for s in "/sys/class/block/$1/slaves/"*; do
      [ -e "$s" ] || continue
      found_slave=1
      (disks_of "${s##*/}")
    done
    [ "$found_slave" = 1 ] || printf '%s\n' "$1"
  }
  if [ -n "$root_dev" ]; then
    for disk in $(disks_of "$root_dev"); do
      realdir "/sys/class/block/$disk/device"
      dpath=$REAL
      [ -n "$dpath" ] || continue
      while [ -n "$dpath" ] && [ "$dpath" != /sys/devices ] && [ "$dpath" != /sys ]; do
        if [ -e "$dpath/driver/module" ]; then
          modname "$dpath/driver/module"
          [ -n "$MOD" ] && emit storage_module "$MOD"
        fi
        dpath=${dpath%/*}
      done
    done
  fi

  # ---- GRUB --------------------------------------------------------------------------------------
  first_of grub-mkconfig grub2-mkconfig && emit grub_mkconfig "$FIRST"
  first_of update-grub update-grub2 && emit grub_update "$FIRST"
  first_of grub-reboot grub2-reboot && emit grub_reboot "$FIRST"
  first_of grub-editenv grub2-editenv && emit grub_editenv "$FIRST"
  gdir=
  for g in /boot/grub /boot/grub2; do
    if [ -f "$R$g/grub.cfg" ]; then gdir=$g && break; fi
  done
  if [ -z "$gdir" ]; then
    for g in /boot/grub /boot/grub2; do
      if [ -d "$R$g" ]; then gdir=$g && break; fi
    done
  fi
  if [ -n "$gdir" ]; then
    emit grub_dir "$gdir"
    if [ -f "$R$gdir/grubenv" ]; then
      emit grub_env_file "$gdir/grubenv"
      # some distributions keep grubenv on the EFI system partition behind a symlink
      [ -L "$R$gdir/grubenv" ] && emit grub_env_link "$(readlink "$R$gdir/grubenv")"
      envsize=$(wc -c <"$R$gdir/grubenv" | tr -d ' ')
      if [ "${envsize:-0}" -le 65536 ]; then
        emit grub_env_hex "$(od -An -v -tx1 "$R$gdir/grubenv" | tr -d ' \n')"
      fi
    fi
    flag grep -q next_entry "$R$gdir/grub.cfg"
    emit grub_cfg_next_entry "$FLAG"
    # GRUB clears next_entry at boot by rewriting grubenv's sectors in place; it cannot do
    # that through LVM, md RAID, dm-crypt, or inside btrfs/zfs. Then a one-shot never clears.
    # (a sysroot's sidecar says it: there is no kernel to ask where the directory lives)
    if [ -z "$R" ]; then
      locate grub "$gdir"
      reason=
      gdev=$LOC_DEV
      gparent=
      if [ -n "$gdev" ] && [ -e "/sys/class/block/$gdev/partition" ]; then
        realdir "/sys/class/block/$gdev/.."
        gparent=${REAL##*/}
      fi
      case $LOC_FSTYPE in
      btrfs | zfs) reason="$gdir is on $LOC_FSTYPE, where GRUB cannot write grubenv" ;;
      esac
      if [ -z "$reason" ]; then
        for x in "$gdev" "$gparent"; do
          case $x in
          dm-*)
            kind=device-mapper
            rdv xdm "/sys/class/block/$x/dm/uuid"
            case $xdm in
            LVM-*) kind=LVM ;;
            CRYPT-*) kind="dm-crypt (LUKS)" ;;
            esac
            reason="$gdir is on $kind ($x), where GRUB cannot write grubenv"
            break
            ;;
          md*)
            reason="$gdir is on md RAID ($x), where GRUB cannot write grubenv"
            break
            ;;
          loop* | nbd* | zram* | ram*)
            reason="$gdir is on $x, not a plain disk partition"
            break
            ;;
          esac
        done
      fi
      if [ -z "$reason" ] && [ -z "$gdev" ]; then
        reason="$gdir is not on a block device (${LOC_FSTYPE:-unknown} from ${LOC_SRC:-unknown source})"
      fi
      if [ -z "$reason" ]; then
        emit grub_env_boot_writable 1
      else
        emit grub_env_boot_writable 0
        emit grub_env_boot_reason "$reason"
      fi
    fi
  fi
  flag test -d "$R/etc/grub.d"
  emit grub_d_dir "$FLAG"

  # ---- firmware boot files: the Raspberry Pi firmware's partition, u-boot's -----------------------
  # Which of the files that say how the firmware or u-boot boots are there, with the content of
  # the small text ones (a plan writes their exact new content, stage2 puts the old back).
  for d in /boot/firmware /boot /boot/uboot ''; do
    for f in config.txt cmdline.txt tryboot.txt autoboot.txt uEnv.txt boot.scr boot.cmd \
      extlinux/extlinux.conf MLO u-boot.img u-boot.bin start.elf start4.elf bootcode.bin \
      kernel.img kernel7.img kernel7l.img kernel8.img kernel_2712.img vmlinuz initrd.img; do
      [ -f "$R$d/$f" ] || continue
      size=$(wc -c <"$R$d/$f" | tr -d ' ')
      hex=
      case $f in
      *.txt | boot.cmd | *.conf)
        [ "${size:-0}" -le 65536 ] && hex=$(od -An -v -tx1 "$R$d/$f" | tr -d ' \n')
        ;;
      esac
      rec bootfile "path=$d/$f" "size=$size" "hex=$hex"
    done
  done
  # u-boot written raw to a disk (its SPL at 128 KiB, u-boot.img at 384 KiB, as TI AM335x
  # boards boot from eMMC or SD) or to an eMMC boot partition: the image header's magic.
  if [ -z "$R" ]; then
    for p in /sys/class/block/mmcblk[0-9] /sys/class/block/mmcblk[0-9]boot[0-9]; do
      [ -b "/dev/${p##*/}" ] || continue
      for off in 393216 131072 0; do
        m=$(od -An -v -tx1 -j "$off" -N 4 "/dev/${p##*/}" 2>/dev/null | tr -d ' \n')
        case $m in
        27051956) rec uboot_raw "device=${p##*/}" "offset=$off" "format=uimage" ;;
        d00dfeed) rec uboot_raw "device=${p##*/}" "offset=$off" "format=fit" ;;
        esac
      done
    done
  fi
  # the device trees of the running kernel, for a u-boot board's stage2 entry
  if [ ! -f "$R/boot/firmware/config.txt" ] && [ ! -f "$R/boot/config.txt" ]; then
    for d in "/boot/dtbs/$rel" "/usr/lib/linux-image-$rel" /boot/dtbs; do
      [ -d "$R$d" ] || continue
      emit dtb_dir "$d"
      for f in "$R$d"/*.dtb; do
        [ -f "$f" ] && emit dtb_name "${f##*/}"
      done
      break
    done
  fi

  # ---- UEFI: the firmware's boot entries and the EFI system partition ------------------------------
  # Straight from efivarfs (no efibootmgr needed): every Boot#### entry with its active flag and
  # description, BootCurrent, a pending BootNext, BootOrder; and where the ESP is mounted.
  ev=$R/sys/firmware/efi/efivars
  eg=8be4df61-93ca-11d2-aa0d-00e098032b8c
  if [ -d "$ev" ]; then
    efw=0
    if awk '$2 == "/sys/firmware/efi/efivars" && $3 == "efivarfs" && $4 ~ /^rw(,|$)/ { f = 1 }
      END { exit !f }' "$R/proc/self/mounts" 2>/dev/null; then efw=1; fi
    emit efi_vars_writable "$efw"
    # UINT16 numbers after the 4 attribute bytes, as efibootmgr prints them
    for v in BootCurrent BootNext BootOrder; do
      [ -r "$ev/$v-$eg" ] || continue
      val=$(od -An -v -tu1 "$ev/$v-$eg" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) b[n++] = $i }
        END { for (i = 4; i + 1 < n; i += 2) printf "%s%04X", (i > 4 ? "," : ""), b[i] + 256 * b[i + 1] }')
      case $v in
      BootCurrent) emit efi_boot_current "$val" ;;
      BootNext) emit efi_boot_next "$val" ;;
      BootOrder) emit efi_boot_order "$val" ;;
      esac
    done
    # EFI_LOAD_OPTION: UINT32 attributes (bit 0: active), UINT16 device path length, then the
    # description in UCS-2 up to 0x0000 (what is not printable ASCII reads '?')
    for f in "$ev"/Boot[0-9A-F][0-9A-F][0-9A-F][0-9A-F]-"$eg"; do
      [ -r "$f" ] || continue
      en=${f##*/Boot}
      ent=$(od -An -v -tu1 "$f" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) b[n++] = $i }
        END {
          if (n < 10) exit 1
          printf "%d\t", b[4] % 2
          for (i = 10; i + 1 < n; i += 2) {
            c = b[i] + 256 * b[i + 1]
            if (c == 0) break
            if (c >= 32 && c < 127) printf "%c", c; else printf "?"
          }
        }') || continue
      rec efi_boot_entry "num=${en%%-*}" "active=${ent%%"$TAB"*}" "label=${ent#*"$TAB"}"
    done
    if [ -z "$R" ]; then
      for m in /boot/efi /efi /boot; do
        if awk -v m="$m" '$2 == m && $3 == "vfat" { f = 1 } END { exit !f }' /proc/self/mounts; then
          locate esp "$m"
          break
        fi
      done
    fi
  fi

  # ---- network: interfaces, addresses, default routes, running daemons (never a secret) ----------
  # Only what the planner needs to tell whether balenaOS will reach the network: the config
  # files themselves (which hold Wi-Fi keys) are read by a separate collection, never here.
  # Every global address and the IPv4 default routes at once (not two ip and two awk per
  # interface), a line each: "NAME 4 ADDR[+dynamic]", "NAME 6 ADDR", or a netroute record.
  addrs='' routes=''
  if [ -z "$R" ] && have ip >/dev/null; then
    while IFS= read -r al; do
      case $al in
      netroute*) routes="$routes$al$NL" ;;
      ?*) addrs="$addrs$al$NL" ;;
      esac
    done <<EOF
$({
      ip -o addr show scope global
      echo @routes
      ip -4 route show default
    } 2>/dev/null | awk -v OFS='	' '
      $1 == "@routes" { r = 1; next }
      !r { n = $2; sub(/@.*/, "", n) }
      !r && $3 == "inet" { a = $4; for (i = 5; i <= NF; i++) if ($i == "dynamic") a = a "+dynamic"; print n " 4 " a }
      !r && $3 == "inet6" { print n " 6 " $4 }
      r {
        dev = ""; proto = ""
        for (i = 1; i < NF; i++) { if ($i == "dev") dev = $(i + 1); if ($i == "proto") proto = $(i + 1) }
        if (dev != "") print "netroute", "dev=" dev, "proto=" proto
      }')
EOF
  fi
  for p in "$R"/sys/class/net/*; do
    [ -e "$p" ] || continue
    n=${p##*/}
    [ "$n" = lo ] && continue
    kind=other
    rdv ntype "$p/type"
    if [ -d "$p/wireless" ] || [ -e "$p/phy80211" ]; then
      kind=wifi
    elif [ "$ntype" = 1 ]; then
      # ethernet unless uevent names a DEVTYPE (bridge, vlan, wlan...)
      kind=ethernet
      if [ -r "$p/uevent" ]; then
        while IFS= read -r ue || [ -n "$ue" ]; do
          case $ue in DEVTYPE=*) kind=other ;; esac
        done <"$p/uevent"
      fi
    fi
    phys=0
    [ -e "$p/device" ] && phys=1
    rdv oper "$p/operstate"
    up=0
    [ "$oper" = up ] && up=1
    rdv mac "$p/address"
    drv=
    if [ -e "$p/device/driver/module" ]; then
      modname "$p/device/driver/module"
      drv=$MOD
    fi
    v4='' v6=''
    while read -r an af aa; do
      [ "$an" = "$n" ] || continue
      case $af in
      4) v4="${v4:+$v4 }$aa" ;;
      6) v6="${v6:+$v6 }$aa" ;;
      esac
    done <<EOF
$addrs
EOF
    rec netif "name=$n" "kind=$kind" "mac=$mac" "up=$up" "physical=$phys" "driver=$drv" "ipv4=$v4" "ipv6=$v6"
  done
  printf '%s' "$routes"
  # daemons that manage the network (and a watchdog daemon), by their process names
  daemons=
  for c in "$R"/proc/[0-9]*/comm; do
    { IFS= read -r comm <"$c"; } 2>/dev/null || continue
    case $comm in
    NetworkManager | systemd-network | connmand | dhcpcd | wpa_supplicant | dhclient | udhcpc | iwd | watchdog | wd_keepalive)
      case " $daemons " in *" $comm "*) ;; *) daemons="$daemons $comm" ;; esac
      ;;
    esac
  done
  for d in $daemons; do
    case $d in
    watchdog | wd_keepalive) emit watchdog_daemon "$d" ;;
    *) emit net_service "$d" ;;
    esac
  done

  # ---- hardware watchdog: which device, running or not, its driver, systemd's use of it ------------
  have_wdt=0
  for w in "$R"/sys/class/watchdog/watchdog*; do
    [ -e "$w" ] || continue
    wm=
    if [ -e "$w/device/driver/module" ]; then
      modname "$w/device/driver/module"
      wm=$MOD
    fi
    have_wdt=1
    rdv wstate "$w/state"
    rdv wid "$w/identity"
    rdv wto "$w/timeout"
    rec watchdog "device=/dev/${w##*/}" "state=$wstate" "identity=$wid" "timeout=$wto" "module=$wm"
  done
  # (only asked when there is a watchdog for systemd to use: systemctl is a costly start)
  if [ -z "$R" ] && [ "$have_wdt" = 1 ] && have systemctl >/dev/null; then
    v=$(systemctl show -p RuntimeWatchdogUSec --value 2>/dev/null)
    [ -n "$v" ] && emit watchdog_systemd "$v"
  fi

  # ---- tools -------------------------------------------------------------------------------------
  for t in setsid flock sha256sum efibootmgr curl wget; do
    flag have "$t"
    emit "tool_$t" "$FLAG"
  done

  # a sysroot: what only a live kernel could say (arch, block devices, dir records) from its sidecar
  if [ -n "$R" ] && [ -r "$R/.balena-migrate-sysroot" ]; then
    grep -v -e '^#' -e '^$' "$R/.balena-migrate-sysroot"
  fi

  emit end ok
}

main "$@" </dev/null
