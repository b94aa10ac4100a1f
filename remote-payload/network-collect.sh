#!/bin/sh
# balena-migrate network collection: prints the network configuration files that the planner
# turns into NetworkManager keyfiles for balenaOS. Changes nothing. Runs as root: these files
# hold Wi-Fi keys and are readable by root only. What it prints goes into the orchestrator's
# memory and nowhere else: never into a log, a report, the facts or a file on either side.
#
# Usage (as root):  sh network-collect.sh
#
# Output: per file a line `file<TAB>PATH<TAB>SIZE<TAB>ENCODING` (base64, or hex when there is
# no base64 tool), the content in lines of that encoding, then `end-file`; a file that is too
# large is `skipped<TAB>PATH<TAB>REASON`. The last line is `end<TAB>ok`.

LC_ALL=C
export LC_ALL
PATH="${PATH:-/usr/bin:/bin}:/usr/sbin:/usr/bin:/sbin:/bin"
export PATH
TAB=$(printf '\t')
NL='
'
MAX_BYTES=262144

if command -v base64 >/dev/null 2>&1; then ENC=base64; else ENC=hex; fi

dump() {
  [ -f "$1" ] && [ -r "$1" ] || return 0
  case $1 in *"$TAB"* | *"$NL"*) return 0 ;; esac
  size=$(wc -c <"$1")
  size=${size##* } # busybox pads it with spaces
  if [ "${size:-0}" -gt "$MAX_BYTES" ]; then
    printf 'skipped\t%s\tlarger than %s bytes\n' "$1" "$MAX_BYTES"
    return 0
  fi
  printf 'file\t%s\t%s\t%s\n' "$1" "$size" "$ENC"
  if [ "$ENC" = base64 ]; then base64 <"$1"; else od -An -v -tx1 "$1" | tr -d ' '; fi
  printf 'end-file\n'
}

main() {
  for f in /etc/wpa_supplicant.conf /etc/wpa_supplicant/*.conf \
    /etc/NetworkManager/system-connections/* \
    /var/lib/connman/*.config /var/lib/connman/*/settings \
    /etc/network/interfaces /etc/network/interfaces.d/* \
    /etc/netplan/*.yaml /etc/netplan/*.yml /lib/netplan/*.yaml /run/netplan/*.yaml \
    /etc/dhcpcd.conf \
    /etc/systemd/network/*.network; do
    dump "$f"
  done
  printf 'end\tok\n'
}

main </dev/null
