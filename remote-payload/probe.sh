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

LC_ALL=C
export LC_ALL
PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export PATH

TAB=$(printf '\t')
CR=$(printf '\r')
NL='
'
WORKDIR=${1:-}

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
  printf '%s\t%s\n' "$1" "$(esc "$2")"
}

# rec KEY NAME=VALUE...: one record line, every value escaped.
rec() {
  rec_line=$1
  shift
  for rec_f in "$@"; do
    rec_line="$rec_line$TAB${rec_f%%=*}=$(esc "${rec_f#*=}")"
  done
  printf '%s\n' "$rec_line"
}

# rd FILE: the content of a readable file, or nothing.
rd() {
  [ -r "$1" ] && cat "$1" 2>/dev/null
}

# have CMD: the path of a command, or nothing (status 1).
have() {
  command -v "$1" 2>/dev/null
}

# first_of CMD...: the path of the first command that exists.
first_of() {
  for first_c in "$@"; do
    have "$first_c" && return 0
  done
  return 1
}

# flag CONDITION...: 1 when the test command succeeds, else 0.
flag() {
  if "$@" >/dev/null 2>&1; then printf 1; else printf 0; fi
}

# Everything runs inside main with stdin from /dev/null: the orchestrator feeds this script
# to `sh -s` on stdin, and no command in here may eat the rest of it.
main() {
  emit probe_version 1

  # ---- identity --------------------------------------------------------------------------------
  h=$(rd /proc/sys/kernel/hostname)
  [ -n "$h" ] || h=$(uname -n)
  emit hostname "$h"
  emit arch "$(uname -m)"

  osr=/etc/os-release
  [ -r "$osr" ] || osr=/usr/lib/os-release
  if [ -r "$osr" ]; then
    while IFS= read -r l || [ -n "$l" ]; do
      case $l in '' | '#'*) continue ;; esac
      emit os_release "$l"
    done <"$osr"
  fi

  # ---- kernel ------------------------------------------------------------------------------------
  rel=$(uname -r)
  emit kernel_release "$rel"
  for d in "/lib/modules/$rel" "/usr/lib/modules/$rel"; do
    if [ -d "$d" ]; then
      emit kernel_modules_dir "$d"
      break
    fi
  done
  if [ -f "/boot/vmlinuz-$rel" ]; then
    emit kernel_image "/boot/vmlinuz-$rel"
    emit kernel_image_size "$(wc -c <"/boot/vmlinuz-$rel" | tr -d ' ')"
  fi
  emit kernel_cmdline "$(rd /proc/cmdline)"

  # ---- firmware ----------------------------------------------------------------------------------
  if [ -d /sys/firmware/efi ]; then
    emit firmware uefi
  elif [ -d /sys/firmware/devicetree/base ] || [ -d /proc/device-tree ]; then
    emit firmware devicetree
  else
    emit firmware bios
  fi
  # SecureBoot: the variable's last byte is 1 when enforcing (efivarfs puts 4 attribute bytes first).
  sb=
  for v in /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c \
    /sys/firmware/efi/vars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c/data; do
    if [ -r "$v" ]; then
      sb=$(od -An -v -tu1 "$v" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) last = $i } END { print last }')
      break
    fi
  done
  case $sb in 0 | 1) emit secure_boot "$sb" ;; esac

  # ---- hardware ----------------------------------------------------------------------------------
  for k in sys_vendor product_name board_name; do
    v=$(rd "/sys/class/dmi/id/$k")
    [ -n "$v" ] && emit "dmi_$k" "$v"
  done
  dt=/sys/firmware/devicetree/base
  [ -d "$dt" ] || dt=/proc/device-tree
  if [ -r "$dt/model" ]; then
    emit dt_model "$(tr -d '\000' <"$dt/model")"
  fi
  if [ -r "$dt/compatible" ]; then
    tr '\000' '\n' <"$dt/compatible" | while IFS= read -r c; do
      [ -n "$c" ] && emit dt_compatible "$c"
    done
  fi
  cpu=$(awk '/^(model name|Model|Hardware|cpu model)[ \t]*:/ { sub(/^[^:]*:[ \t]*/, ""); print; exit }' /proc/cpuinfo 2>/dev/null)
  [ -n "$cpu" ] && emit cpu_model "$cpu"
  for k in total:MemTotal available:MemAvailable free:MemFree; do
    v=$(awk -v k="${k#*:}:" '$1 == k { print $2; exit }' /proc/meminfo 2>/dev/null)
    [ -n "$v" ] && emit "mem_${k%%:*}_kb" "$v"
  done

  # ---- block devices -----------------------------------------------------------------------------
  # How filesystem identities are read: util-linux blkid, else lsblk, else the udev database,
  # else busybox blkid (UUID/LABEL/TYPE only).
  if blkid -V 2>/dev/null | grep -q util-linux; then
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
    blkid) [ -b "/dev/$1" ] && blkid -o value -s "$3" "/dev/$1" 2>/dev/null | head -n 1 ;;
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
  majmin_map=
  for p in /sys/class/block/*; do
    [ -e "$p/dev" ] || continue
    n=${p##*/}
    mm=$(rd "$p/dev")
    majmin_map="$majmin_map$mm $n$NL"
    sectors=$(rd "$p/size")
    size=$((${sectors:-0} * 512))
    parent=
    partn=
    if [ -e "$p/partition" ]; then
      type=part
      partn=$(rd "$p/partition")
      parent=$(cd -P "$p/.." 2>/dev/null && pwd -P)
      parent=${parent##*/}
      removable=$(rd "/sys/class/block/$parent/removable")
    else
      case $n in
      sr* | fd* | *boot[0-9] | *rpmb) type=other ;;
      *) if [ -e "$p/device" ]; then type=disk; else type=other; fi ;;
      esac
      removable=$(rd "$p/removable")
    fi
    uuid='' partuuid='' label='' fstype='' pttype=''
    case $n in sr* | fd* | ram*) size_probe=0 ;; *) size_probe=$size ;; esac
    if [ "$size_probe" -gt 0 ]; then
      uuid=$(ident "$n" "$mm" UUID)
      label=$(ident "$n" "$mm" LABEL)
      fstype=$(ident "$n" "$mm" TYPE)
      if [ "$type" = part ]; then
        partuuid=$(ident "$n" "$mm" PARTUUID)
      else
        pttype=$(ident "$n" "$mm" PTTYPE)
      fi
    fi
    rec blockdev "name=$n" "type=$type" "parent=$parent" "size=$size" "partn=$partn" \
      "pttype=$pttype" "removable=${removable:-0}" "ro=$(rd "$p/ro")" "majmin=$mm" \
      "uuid=$uuid" "partuuid=$partuuid" "label=$label" "fstype=$fstype" \
      "dm_uuid=$(rd "$p/dm/uuid")" "dm_name=$(rd "$p/dm/name")"
  done

  # ---- mounts ------------------------------------------------------------------------------------
  # Fields stay in the kernel's octal-escaped form, which the parser decodes.
  awk -v OFS='\t' '{ print "mount", "source=" $1, "target=" $2, "fstype=" $3, "options=" $4 }' /proc/self/mounts

  # mount_of DIR: "MAJ:MIN FSROOT MOUNTPOINT OPTIONS FSTYPE SOURCE" (kernel-escaped) of the
  # mount holding the canonical directory DIR: the longest mount point that contains it, the
  # later one on ties (over-mounts).
  mount_of() {
    P=$1 awk '
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
      BEGIN { p = ENVIRON["P"]; best = ""; bestlen = -1 }
      {
        mp = unoct($5)
        if (mp == "/" || p == mp || substr(p, 1, length(mp) + 1) == mp "/") {
          if (length(mp) >= bestlen) {
            for (i = 7; i <= NF && $i != "-"; i++) ;
            bestlen = length(mp)
            best = $3 " " $4 " " $5 " " $6 " " $(i + 1) " " $(i + 2)
          }
        }
      }
      END { print best }
    ' /proc/self/mountinfo
  }

  # dev_of MAJMIN SOURCE: kernel name of the block device behind a mount, or nothing.
  dev_of() {
    d=$(printf '%s' "$majmin_map" | awk -v m="$1" '$1 == m { print $2; exit }')
    if [ -z "$d" ]; then
      # btrfs and friends report an anonymous device number: fall back to the mount source.
      s=${2##*/}
      if [ -n "$s" ] && [ -e "/sys/class/block/$s" ]; then
        d=$s
      else
        for dm in /sys/class/block/dm-*; do
          [ -r "$dm/dm/name" ] && [ "$(cat "$dm/dm/name")" = "$s" ] && d=${dm##*/} && break
        done
      fi
    fi
    printf '%s' "$d"
  }

  # locate ROLE PATH: which filesystem holds PATH (or its nearest existing ancestor), free space,
  # writability. Sets LOC_DEV, LOC_FSTYPE and LOC_SRC for the caller.
  locate() {
    lp=$2
    exists=1
    while [ ! -e "$lp" ] && [ ! -L "$lp" ]; do
      exists=0
      lp=${lp%/*}
      [ -n "$lp" ] || lp=/
    done
    [ -d "$lp" ] || lp=${lp%/*}
    [ -n "$lp" ] || lp=/
    real=$(cd -P "$lp" 2>/dev/null && pwd -P) || real=$lp
    set -f
    # shellcheck disable=SC2046
    set -- "$1" "$2" $(mount_of "$real")
    set +f
    LOC_DEV=$(dev_of "${3:-}" "${8:-}")
    LOC_FSTYPE=${7:-}
    LOC_SRC=${8:-}
    free_kb=$(df -P -k "$lp" 2>/dev/null | awk 'NR == 2 { print $4 }')
    w=1
    [ -w "$lp" ] || w=0
    case ",${6:-}," in *,ro,*) w=0 ;; esac
    printf 'dir\trole=%s\tpath=%s\texists=%s\tprobed=%s\tmountpoint=%s\tfsroot=%s\tdevice=%s\tfstype=%s\tsource=%s\tfree_kb=%s\twritable=%s\n' \
      "$1" "$(esc "$2")" "$exists" "$(esc "$real")" "${5:-}" "${4:-}" "$LOC_DEV" "${7:-}" "${8:-}" "${free_kb:-0}" "$w"
  }

  locate root /
  root_dev=$LOC_DEV
  locate boot /boot
  if [ -n "$WORKDIR" ]; then
    locate work "$WORKDIR"
  fi

  # ---- storage drivers of the root disk ------------------------------------------------------------
  # disks_of NAME: the whole disks under a block device (partition parent, dm/md slaves).
  disks_of() {
    if [ -e "/sys/class/block/$1/partition" ]; then
      dp=$(cd -P "/sys/class/block/$1/.." 2>/dev/null && pwd -P)
      (disks_of "${dp##*/}")
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
      dpath=$(cd -P "/sys/class/block/$disk/device" 2>/dev/null && pwd -P) || continue
      while [ -n "$dpath" ] && [ "$dpath" != /sys/devices ] && [ "$dpath" != /sys ]; do
        if [ -e "$dpath/driver/module" ]; then
          m=$(cd -P "$dpath/driver/module" 2>/dev/null && pwd -P)
          [ -n "$m" ] && emit storage_module "${m##*/}"
        fi
        dpath=${dpath%/*}
      done
    done
  fi

  # ---- GRUB --------------------------------------------------------------------------------------
  v=$(first_of grub-mkconfig grub2-mkconfig) && emit grub_mkconfig "$v"
  v=$(first_of update-grub update-grub2) && emit grub_update "$v"
  v=$(first_of grub-reboot grub2-reboot) && emit grub_reboot "$v"
  v=$(first_of grub-editenv grub2-editenv) && emit grub_editenv "$v"
  gdir=
  for g in /boot/grub /boot/grub2; do
    if [ -f "$g/grub.cfg" ]; then gdir=$g && break; fi
  done
  if [ -z "$gdir" ]; then
    for g in /boot/grub /boot/grub2; do
      if [ -d "$g" ]; then gdir=$g && break; fi
    done
  fi
  if [ -n "$gdir" ]; then
    emit grub_dir "$gdir"
    if [ -f "$gdir/grubenv" ]; then
      emit grub_env_file "$gdir/grubenv"
      envsize=$(wc -c <"$gdir/grubenv" | tr -d ' ')
      if [ "${envsize:-0}" -le 65536 ]; then
        emit grub_env_hex "$(od -An -v -tx1 "$gdir/grubenv" | tr -d ' \n')"
      fi
    fi
    emit grub_cfg_next_entry "$(flag grep -q next_entry "$gdir/grub.cfg")"
    # GRUB clears next_entry at boot by rewriting grubenv's sectors in place; it cannot do
    # that through LVM, md RAID, dm-crypt, or inside btrfs/zfs. Then a one-shot never clears.
    locate grub "$gdir"
    reason=
    gdev=$LOC_DEV
    gparent=
    if [ -n "$gdev" ] && [ -e "/sys/class/block/$gdev/partition" ]; then
      gparent=$(cd -P "/sys/class/block/$gdev/.." 2>/dev/null && pwd -P)
      gparent=${gparent##*/}
    fi
    case $LOC_FSTYPE in
    btrfs | zfs) reason="$gdir is on $LOC_FSTYPE, where GRUB cannot write grubenv" ;;
    esac
    if [ -z "$reason" ]; then
      for x in "$gdev" "$gparent"; do
        case $x in
        dm-*)
          kind=device-mapper
          case $(rd "/sys/class/block/$x/dm/uuid") in
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
  emit grub_d_dir "$(flag test -d /etc/grub.d)"

  # ---- tools -------------------------------------------------------------------------------------
  for t in setsid flock sha256sum efibootmgr; do
    emit "tool_$t" "$(flag have "$t")"
  done

  emit end ok
}

main "$@" </dev/null
