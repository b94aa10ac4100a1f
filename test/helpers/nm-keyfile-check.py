#!/usr/bin/python3
# Reads NetworkManager keyfiles with NetworkManager's own parser (libnm's nm_keyfile_read,
# through PyGObject) and verifies each connection as NetworkManager would before using it.
# Prints one JSON object per file: what NetworkManager understood, or its error.
# Used by the unit tests (Debian packages python3-gi and gir1.2-nm-1.0). Secrets are not printed.
import json
import sys

import gi

gi.require_version("NM", "1.0")
from gi.repository import GLib, NM  # noqa: E402


def describe(path):
    kf = GLib.KeyFile()
    try:
        kf.load_from_file(path, GLib.KeyFileFlags.NONE)
        conn = NM.keyfile_read(kf, "/etc/NetworkManager/system-connections", NM.KeyfileHandlerFlags.NONE, None, None)
        conn.normalize()
        conn.verify()
        conn.verify_secrets()
    except GLib.Error as e:
        return {"file": path, "ok": False, "error": e.message}
    s_con = conn.get_setting_connection()
    out = {"file": path, "ok": True, "id": s_con.get_id(), "type": s_con.get_connection_type()}
    wifi = conn.get_setting_wireless()
    if wifi is not None:
        ssid = wifi.get_ssid()
        out["ssid"] = bytes(ssid.get_data()).decode("utf-8", "replace") if ssid else None
        out["hidden"] = wifi.get_hidden()
    sec = conn.get_setting_wireless_security()
    if sec is not None:
        out["keyMgmt"] = sec.get_key_mgmt()
        out["hasPsk"] = bool(sec.get_psk())
    eap = conn.get_setting_802_1x()
    if eap is not None:
        out["eap"] = [eap.get_eap_method(i) for i in range(eap.get_num_eap_methods())]
        out["hasPassword"] = bool(eap.get_password())
    eth = conn.get_setting_wired()
    if eth is not None and eth.get_mac_address():
        out["mac"] = eth.get_mac_address().lower()
    for name, ip in (("ipv4", conn.get_setting_ip4_config()), ("ipv6", conn.get_setting_ip6_config())):
        if ip is None:
            continue
        out[name] = {
            "method": ip.get_method(),
            "addresses": [f"{a.get_address()}/{a.get_prefix()}" for a in (ip.get_address(i) for i in range(ip.get_num_addresses()))],
            "gateway": ip.get_gateway(),
            "dns": [ip.get_dns(i) for i in range(ip.get_num_dns())],
        }
    return out


for p in sys.argv[1:]:
    print(json.dumps(describe(p)))
