"""`powersentinel config validate|push|pull` against the fake board: precise messages with TOML
lines, hashing of plaintext passwords, the diff, atomic install, and a link dropped mid-upload."""
import json
import os
import time

import pytest

from fakeboard import FakeBoard, fake, invoke  # noqa: F401 (fixture)
from powersentinel import siteconfig
from powersentinel.paths import use_firmware_lib

use_firmware_lib()
from sentinel import console, passwd  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(REPO, "docs", "site.example.toml")
PLAINTEXTS = ("Wq7-horse-battery", "Ops-2f9c-stapler")


def write(tmp_path, text, name="site.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_example_site_file_is_valid_and_passwords_are_hashed(tmp_path):
    out = str(tmp_path / "device.json")
    code, so, se = invoke(["config", "validate", EXAMPLE, "-o", out])
    assert code == 0, se
    assert "ok (site server-room-1; ups link q1; 3 tiers, 6 hosts; 2 NUT users)" in so
    text = open(out).read()
    for pw in PLAINTEXTS:
        assert pw not in text
    cfg = json.loads(text)
    assert [t["name"] for t in cfg["tiers"]] == ["apps", "databases", "storage"]
    users = cfg["nut"]["users"]
    assert passwd.check_password(users[0]["password"], PLAINTEXTS[0])
    assert passwd.check_password(users[1]["password"], PLAINTEXTS[1])
    assert users[1]["actions"] == ["FSD"]


def test_problems_name_file_line_key_and_what_is_allowed(tmp_path):
    src = open(EXAMPLE).read()
    lines = src.splitlines()
    bad = (src.replace('mac = "aa:bb:cc:00:00:22"', 'mac = "aa:bb:cc"')
              .replace("grace_s = 60", "grace = 60")
              .replace('"Ops-2f9c-stapler"', '"changeme"')
              .replace('link = "q1"', 'link = "serial"'))
    p = write(tmp_path, bad)
    code, so, se = invoke(["config", "validate", p])
    assert code == 2 and "Traceback" not in se
    err = se.splitlines()

    def line_no(fragment):
        return next(i + 1 for i, ln in enumerate(lines) if fragment in ln)

    assert "error: %s:%d: policy.grace: unknown key; allowed keys: grace_s," % (p, line_no("grace_s = 60")) in se
    assert "error: %s:%d: tiers[1].hosts[1].mac: \"aa:bb:cc\" has 8 characters; allowed 17..17" % (
        p, line_no('mac = "aa:bb:cc:00:00:22"')) in se
    assert "error: %s:%d: nut.users[1].password: is an empty, default or easily guessed password " \
           "(\"changeme\")" % (p, line_no('"Ops-2f9c-stapler"')) in se
    assert "error: %s:%d: ups.link: \"serial\" is not allowed; allowed: \"q1\", \"contacts\", \"none\"" % (
        p, line_no('link = "q1"')) in se
    assert err[-1] == "error: %s: 4 problems" % p
    # in file order
    nums = [int(e.split(":")[2]) for e in err[:-1]]
    assert nums == sorted(nums)


def test_toml_syntax_error_is_one_line_with_line_and_column(tmp_path):
    p = write(tmp_path, "[site]\nname = \"x\"\n[policy\ngrace_s = 5\n")
    code, so, se = invoke(["config", "validate", p])
    assert code == 2
    assert se.count("\n") == 1 and se.startswith("error: %s:3:" % p) and "not valid TOML" in se


def test_missing_file_and_inline_tables_and_duplicates(tmp_path):
    code, _, se = invoke(["config", "validate", str(tmp_path / "nope.toml")])
    assert code == 2 and se == "error: %s: no such file\n" % (tmp_path / "nope.toml")
    p = write(tmp_path, '[[tiers]]\nname = "a"\nhosts = [\n  {name = "h1", address = "10.0.0.1"},\n'
                        '  {name = "h1", address = "10.0.0.300"},\n]\n')
    code, _, se = invoke(["config", "validate", p])
    assert "%s:5: tiers[0].hosts[1].address: \"10.0.0.300\" is not an IPv4 address or a DNS name" % p in se
    assert "%s:5: tiers[0].hosts[1].name: \"h1\" is already used by tiers[0].hosts[0]" % p in se


def test_password_rules(tmp_path):
    base = '[[nut.users]]\nname = "mon"\n'
    p = write(tmp_path, base + 'password = "%s"\n' % passwd.hash_password("x-good-1", "ab"))
    code, _, se = invoke(["config", "validate", p])
    assert code == 2 and "looks like a password hash; write a hash as password_hash" in se
    p = write(tmp_path, base + 'password_hash = "%s"\n' % passwd.hash_password("x-good-1", "ab"))
    assert invoke(["config", "validate", p])[0] == 0
    p = write(tmp_path, base + 'password = "mon"\n')
    assert "nut.users[0].password: is an empty, default or easily guessed password (\"mon\")" \
        in invoke(["config", "validate", p])[2]
    p = write(tmp_path, base + 'password = "has space"\n')
    assert "must be printable ASCII without spaces" in invoke(["config", "validate", p])[2]
    p = write(tmp_path, base + 'password = "a-Good-one"\npassword_hash = "sha256$a$%s"\n' % ("0" * 64))
    assert "give either password" in invoke(["config", "validate", p])[2]


def test_chunks_stay_under_the_device_line_limit():
    cfg = siteconfig.load(EXAMPLE)
    cfg["site"]["name"] = 'quote"heavy' * 2
    text = siteconfig.device_text(cfg) * 3  # long and full of quotes
    pieces = list(siteconfig._chunks(text))
    assert "".join(p for _, p in pieces) == text
    for off, p in pieces:
        frame = console.encode({"id": 999999, "op": "config_put_chunk", "offset": off, "text": p})
        assert len(frame) <= console.MAX_LINE and len(p) <= 2048


def test_push_shows_diff_without_passwords_installs_and_is_idempotent(fake):
    code, so, se = invoke(["config", "push", EXAMPLE, "--port", fake.port])
    assert code == 0, se
    assert '~ site.name: "sentinel" -> "server-room-1"' in so
    assert "+ tiers[storage]" in so and "+ nut.users[ops]" in so
    assert "board restarted and runs the new configuration" in so
    for pw in PLAINTEXTS:
        assert pw not in so + se
        assert pw not in json.dumps(fake.cfg)
    assert fake.cfg["tiers"][2]["hosts"][1]["name"] == "nas2" and fake.cfg_source == "config"
    assert fake.boots == 2
    hashes = [u["password"] for u in fake.cfg["nut"]["users"]]
    # same file again: nothing to send, and the password hashes are not churned
    code, so, _ = invoke(["config", "push", EXAMPLE, "--port", fake.port])
    assert code == 0 and "no changes" in so
    assert [u["password"] for u in fake.cfg["nut"]["users"]] == hashes
    assert sum(1 for op, _ in fake.requests if op == "config_put_commit") == 1


def test_push_diff_of_a_changed_password_and_setting(fake, tmp_path):
    assert invoke(["config", "push", EXAMPLE, "--port", fake.port])[0] == 0
    src = open(EXAMPLE).read().replace("Wq7-horse-battery", "New-pass-77").replace(
        "grace_s = 60", "grace_s = 90")
    p = write(tmp_path, src)
    code, so, _ = invoke(["config", "push", p, "--port", fake.port, "--dry-run"])
    assert code == 0
    assert "~ policy.grace_s: 60 -> 90" in so and "~ nut.users[upsmon].password: changed" in so
    assert "New-pass-77" not in so and "sha256$" not in so and "dry run: nothing sent" in so
    assert fake.cfg["policy"]["grace_s"] == 60


def test_link_dropped_mid_upload_leaves_the_previous_config(tmp_path):
    with FakeBoard() as fb:
        before = json.loads(json.dumps(fb.cfg))
        # a site big enough for several chunks
        hosts = "".join('[[tiers.hosts]]\nname = "h%02d"\naddress = "10.1.0.%d"\nmac = '
                        '"aa:bb:cc:00:01:%02x"\nhealth = "tcp:22"\n' % (i, i + 1, i) for i in range(30))
        p = write(tmp_path, '[[tiers]]\nname = "big"\n' + hosts)
        fb.hangup_after_chunks = 1
        code, so, se = invoke(["config", "push", p, "--port", fb.port])
        assert code == 2 and "Traceback" not in se
        assert se.startswith("error: the board on %s does not answer" % fb.port)
        assert fb.chunks == 1 and fb.upload is not None  # an unfinished upload is on the board
        assert fb.cfg == before and fb.boots == 1         # ... and nothing was installed
        # the board comes back: a new push starts at offset 0 and installs the whole file
        fb.silent = False
        fb.hangup_after_chunks = None
        code, so, se = invoke(["config", "push", p, "--port", fb.port])
        assert code == 0, se
        assert len(fb.cfg["tiers"][0]["hosts"]) == 30
        offsets = [a["offset"] for op, a in fb.requests if op == "config_put_chunk"]
        assert offsets.count(0) == 2


def test_unplugged_mid_upload_is_one_line_and_nothing_installed(tmp_path):
    fb = FakeBoard().start()
    try:
        before = json.loads(json.dumps(fb.cfg))
        fb.unplug_after_chunks = 1
        hosts = "".join('[[tiers.hosts]]\nname = "h%02d"\naddress = "10.1.0.%d"\nmac = '
                        '"aa:bb:cc:00:01:%02x"\nhealth = "tcp:22"\n' % (i, i + 1, i) for i in range(30))
        p = write(tmp_path, '[[tiers]]\nname = "big"\n' + hosts)
        code, so, se = invoke(["config", "push", p, "--port", fb.port])
        assert code == 2 and "Traceback" not in se and se.count("\n") == 1, se
        assert se.startswith("error: lost the connection to the board on %s" % fb.port) or \
            se.startswith("error: the board on %s does not answer" % fb.port), se
        assert fb.chunks == 1 and fb.cfg == before and fb.boots == 1
    finally:
        fb.stop()


def test_device_refusal_is_reported(fake, tmp_path, monkeypatch):
    # a board with a stricter validator than this host (e.g. a newer firmware): its message wins
    def refuse(req):
        raise ValueError("invalid configuration, nothing installed: tiers[0].name: reserved")
    fake.op_config_put_commit = refuse
    p = write(tmp_path, '[[tiers]]\nname = "ups"\n')
    code, _, se = invoke(["config", "push", p, "--port", fake.port])
    assert code == 2
    assert se == "error: the board refused config_put_commit: invalid configuration, nothing " \
                 "installed: tiers[0].name: reserved\n"


def test_pull_json_and_toml_round_trip(fake, tmp_path):
    assert invoke(["config", "push", EXAMPLE, "--port", fake.port])[0] == 0
    code, so, _ = invoke(["config", "pull", "--port", fake.port])
    assert code == 0 and json.loads(so) == fake.cfg
    out = str(tmp_path / "pulled.toml")
    code, so, _ = invoke(["config", "pull", "--port", fake.port, "--toml", "-o", out])
    assert code == 0 and "wrote the board's config configuration" in so
    text = open(out).read()
    assert "password_hash = \"sha256$" in text and "Wq7" not in text
    assert siteconfig.load(out) == fake.cfg
    # pushing the pulled file back changes nothing
    code, so, _ = invoke(["config", "push", out, "--port", fake.port])
    assert code == 0 and "no changes" in so


def test_help_explains_every_config_command():
    for sub in ("validate", "push", "pull"):
        code, so, _ = invoke(["config", sub, "--help"])
        assert code == 0 and "config %s [OPTIONS]" % sub in so and len(so) > 300


def test_instcmds_per_user_validate_and_round_trip(tmp_path):
    """A user's `instcmds`, as docs/nut-clients.md gives them, pass `config validate`; an
    unknown command name is refused with the names allowed; `config pull` writes them back."""
    base = '[[nut.users]]\nname = "ops"\npassword = "Ops-2f9c-stapler"\n'
    p = write(tmp_path, base + 'instcmds = ["beeper.toggle", "test.battery.start.quick"]\n')
    out = str(tmp_path / "device.json")
    code, _, se = invoke(["config", "validate", p, "-o", out])
    assert code == 0, se
    user = json.load(open(out))["nut"]["users"][0]
    assert user["instcmds"] == ["beeper.toggle", "test.battery.start.quick"]
    assert 'instcmds = ["beeper.toggle", "test.battery.start.quick"]' in \
        siteconfig.to_toml(json.load(open(out)))
    p = write(tmp_path, base + 'instcmds = ["load.of"]\n')
    code, _, se = invoke(["config", "validate", p])
    assert code == 2 and 'nut.users[0].instcmds[0]: "load.of" is not allowed; allowed: "ALL"' in se


def test_lines_no_real_board_wires_are_a_warning_naming_file_line_and_key(tmp_path):
    # rp2 and esp32 boards wire contact lines 0-3 and output line 0 (they refuse the config);
    # the virtual board's header has more, so the host warns and accepts
    p = write(tmp_path, '[ups]\nlink = "contacts"\ncontacts = "OB=1;LB=5;"\n'
                        'shutdown_output = 2\n')
    code, so, se = invoke(["config", "validate", p])
    assert code == 0 and "Traceback" not in se, se
    assert se.splitlines() == [
        "warning: %s:3: ups.contacts: contact line 5 is wired only on the virtual board; rp2 "
        "and esp32 boards have lines 0-3 and refuse this config" % p,
        "warning: %s:4: ups.shutdown_output: output line 2 is wired only on the virtual board; "
        "rp2 and esp32 boards have line 0 and refuse this config" % p]
    p = write(tmp_path, '[ups]\nlink = "contacts"\ncontacts = "OB=1;LB=3;"\n')
    code, so, se = invoke(["config", "validate", p])
    assert (code, se) == (0, "")
