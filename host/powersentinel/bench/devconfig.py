"""The device config of a scenario, made as an operator's would be: the scenario's site-file
sections (`[ups]`, `[policy]`, `[mains]`, the tiers' waits) plus what the simulated site
provides (the hosts' addresses, the NUT user, the Wake-on-LAN port), scaled from story time in
one pass (scale_story_times), then converted and checked by the site file's own converter
(siteconfig.convert), exactly as `powersentinel config push` would."""
from __future__ import annotations

import copy

from ..paths import use_firmware_lib
from ..siteconfig import convert

use_firmware_lib()
from sentinel import schema  # noqa: E402

# The settings that are story time: divided by the scale. Everything else is physics and never
# scaled: the mains settings, signal debounces (return_stable_ms, lb_filter_ms), the UPS link's
# timeout (link_lost_s) and the UPS's own minutes (the simulator scales those itself).
STORY_KEYS = ("ups.battery_runtime_s", "policy.grace_s", "policy.runtime_floor_s",
              "policy.stable_mains_s", "tiers.max_wait_s", "tiers.delay_s",
              "recovery.boot_timeout_s")
FLOOR = {"ups.battery_runtime_s": 1}  # 0 would mean "no runtime figure" to the device


def site_document(sc, hosts_of, wol_port, user, pw_hash):
    """The site-file document (story time) for scenario `sc`: hosts_of(tier name) gives the
    tier's device host entries."""
    doc = copy.deepcopy(sc.site)
    doc["ups"].setdefault("battery_runtime_s", sc.ups.runtime_s)  # the simulated battery's
    boot = max([h.boot_s for h in sc.hosts()] or [60.0])
    doc.update({
        "site": {"name": sc.name[:32]},
        "nut": {"users": [{"name": user, "password_hash": pw_hash, "role": "secondary"}]},
        "tiers": [{"name": t.name, "max_wait_s": t.max_wait_s, "delay_s": t.delay_s,
                   "hosts": hosts_of(t.name)} for t in sc.tiers],
        "recovery": {"wol_port": wol_port, "wol_broadcast": "127.0.0.1",
                     "boot_timeout_s": 2 * boot},  # twice the slowest host's boot
    })
    return doc


def scale_story_times(doc, scale):
    """Divide every STORY_KEYS value in `doc` by `scale` (in place), in whole seconds as the
    device counts them, at least the schema's minimum. Returns notes on each clamp and on each
    rounding that changes the story noticeably."""
    notes = []
    for path in STORY_KEYS:
        section, key = path.split(".")
        part = doc.get(section)
        objs = part if isinstance(part, list) else [part]
        for obj in objs:
            if not isinstance(obj, dict):
                continue
            story = obj.get(key)
            if isinstance(story, bool) or not isinstance(story, (int, float)):
                continue  # missing (the device's default applies) or wrong (the converter says)
            name = "%s.%s.%s" % (section, obj.get("name"), key) if isinstance(part, list) else path
            lo = max(schema.field(path).get("min", 0), FLOOR.get(path, 0))
            exact = story / scale
            v = int(round(exact))
            if v < lo:
                notes.append("%s: %g s of story time / scale %g = %.2f s, clamped to %d s"
                             % (name, story, scale, exact, lo))
                v = lo
            elif abs(v - exact) > 0.25 * max(exact, 1.0):
                notes.append("%s: %g s of story time / scale %g = %.2f s, rounded to %d s"
                             % (name, story, scale, exact, v))
            obj[key] = v
    return notes


def device_config(sc, hosts_of, wol_port, scale, user, pw_hash):
    """(full device config, problems, notes) for scenario `sc` at `scale`. problems are
    "key.path: what is wrong" lines from the converter; notes list clamps and roundings."""
    doc = site_document(sc, hosts_of, wol_port, user, pw_hash)
    notes = scale_story_times(doc, scale)
    full, problems = convert(doc, fname=sc.path)
    return full, ["%s: %s" % (p.path, p.message) if p.path else p.message for p in problems], notes


def check(sc):
    """Problems of the scenario's device settings at its time scale (placeholder hosts)."""
    number = {id(h): i for i, h in enumerate(sc.hosts())}

    def hosts_of(tier):
        return [dict({"name": h.name, "address": "127.0.1.%d" % (1 + number[id(h)] % 250),
                      "health": "nut"}, **({"feeds": list(h.feeds)} if h.feeds else {}))
                for h in sc.tier(tier).hosts if h.in_plan]
    return device_config(sc, hosts_of, 9, sc.time_scale, "hilmon",
                         "sha256$abcd$" + "0" * 64)[1]
