"""Board-level power-loss bench: the virtual board's interpreter is killed (SIGKILL, delivered
by the supervisor's `reset cause=power_on`, so the next boot reports a power-on reset as a real
board would) at random instants while the firmware
  - receives and commits a new config over the console (config_put_chunk / config_put_commit,
    which installs atomically and then reboots the board by itself),
  - appends to its event log (mains flickers: mains_lost, mains_event and state records) and
    rotates segments (the log is topped up offline with littlefs-python so a rotation is always
    close: the next flushes close the newest 32 KiB segment and delete the oldest),
  - boots (a second cut 0..400 ms into the boot that followed the first).
After every cut the supervisor reboots the interpreter and the bench checks:
  - the filesystem mounted: no "DEGRADED" banner in console.log since the previous check;
  - config_get returns exactly the old or the new config (validated form), never a mix,
    never the defaults; once a commit was acknowledged, only the new one;
  - log_read: records strictly increasing, none duplicated, each decodes (the device checks
    the CRC), every committed record (see below) still present with the same type and data
    unless rotated away (seq < first).
A record is committed when it is on flash: filler records written offline, and every record
with a seq <= that of a critical record (boot, state change, config, mains_lost, stuck) seen in
a console `log` event of the same boot, or in a log_read reply (critical records are flushed before the event
goes out, and a flush writes the whole pending batch; log_read also returns records still
pending in RAM, so its tail after the last critical record is not committed). Records seen but not yet committed may be lost by a cut; the
bench counts those, and counts seq numbers that a later boot gave to a different record.

    .venv/bin/python benchmarks/reliability_powerloss.py --kills 1000 --out build/reliability_powerloss.json

Knobs: --kills, --seed, --budget-s (wall-time bound), --topup-every (cuts between offline
top-ups of the log). Prints a JSON summary; exit status 1 on any violation.
"""
import argparse
import json
import os
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from reliability_common import LinkError, virtual  # noqa: E402  # pyright: ignore  # pyright: ignore[reportMissingImports]

from sentinel import config as fwconfig  # noqa: E402  # pyright: ignore[reportMissingImports]
from sentinel.journal import encode_record  # noqa: E402  # pyright: ignore[reportMissingImports]
from sentinel.journalread import decode_records  # noqa: E402  # pyright: ignore[reportMissingImports]

CRITICAL = ("boot", "state", "config", "mains_lost", "stuck")
SEG_SIZE, MAX_SEGS = 32768, 8   # sentinel.journal.Journal defaults, as app.py builds it


class Violation(AssertionError):
    pass


# -- offline log top-up (board stopped) -------------------------------------------------------
def _lfs(img_bytes):
    from littlefs import LittleFS, UserContext  # pyright: ignore[reportMissingImports]
    ctx = UserContext(len(img_bytes))
    ctx.buffer[:] = img_bytes
    fs = LittleFS(context=ctx, block_size=4096, block_count=len(img_bytes) // 4096,
                  read_size=32, prog_size=32, lookahead_size=32, mount=True)
    return fs, ctx


def topup_log(img, fill_to=SEG_SIZE - 600, segs=MAX_SEGS):
    """Append filler records so the log holds `segs` segments and the newest is `fill_to` bytes:
    the board's next flushes then close it and rotate. Returns {seq: (type, data)} written."""
    with open(img, "rb") as f:
        data = f.read()
    fs, ctx = _lfs(data)
    try:
        fs.mkdir("/log")
    except Exception:
        pass
    names = sorted(n for n in fs.listdir("/log") if n.endswith(".seg"))
    last = 0
    for n in names:
        with fs.open("/log/" + n, "rb") as f:
            recs = decode_records(f.read())
        if recs:
            last = max(last, recs[-1][0])
    written = {}
    seq = last + 1

    def rec(seq):
        d = {"n": seq, "pad": "f" * (seq % 37)}
        return encode_record(seq, "filler", d, epoch=0, ms=0), ("filler", d)

    # new full segments until there are `segs - 1`, then fill the newest to fill_to
    while len(names) < segs:
        name = "%08x.seg" % seq
        blob = b""
        target = fill_to if len(names) == segs - 1 else SEG_SIZE - 300
        while len(blob) < target:
            r, exp = rec(seq)
            blob += r
            written[seq] = exp
            seq += 1
        with fs.open("/log/" + name, "wb") as f:
            f.write(blob)
        names.append(name)
    # (if there were already `segs` segments, top up the newest one)
    if not written:
        name = names[-1]
        with fs.open("/log/" + name, "rb") as f:
            size = len(f.read())
        blob = b""
        while size + len(blob) < fill_to:
            r, exp = rec(seq)
            blob += r
            written[seq] = exp
            seq += 1
        with fs.open("/log/" + name, "ab") as f:
            f.write(blob)
    fs.unmount()
    with open(img, "r+b") as f:
        f.write(bytes(ctx.buffer))
    return written


# -- the bench --------------------------------------------------------------------------------
class PowerLossBench:
    def __init__(self, workdir, seed, log=print):
        self.seed, self.rng = rc.rng(seed)
        self.dir = os.path.join(workdir, "board")
        self.log = log
        self.cfg_old = rc.make_config(**{"site.name": "cfg-0"})
        self.board = rc.Board(self.dir, self.cfg_old)
        self.link = rc.link(self.board)
        self.cfg_valid = {json.dumps(fwconfig.validate(self.cfg_old)[0], sort_keys=True)}
        self.cfg_current = fwconfig.validate(self.cfg_old)[0]
        self.cfg_n = 0
        self.known = {}          # seq -> (type, data) known committed
        self.seen = {}           # seq -> (type, data) seen in events, maybe not committed
        self.orphans = {}        # seen, never committed, and their boot was cut
        self.max_critical = 0
        self.console_off = 0
        self.stats = {"cuts": 0, "cuts_config": 0, "cuts_log": 0, "cuts_boot": 0,
                      "commits_acked": 0, "config_old_after_cut": 0, "config_new_after_cut": 0,
                      "records_checked": 0, "full_checks": 0, "rotations_seen": 0,
                      "filler_records": 0, "uncommitted_lost": 0, "seq_reused": 0,
                      "topups": 0, "max_boot_to_serving_s": 0.0, "violations": []}
        self.first_seen = None
        try:
            self._topup()
        except BaseException:
            self.close()
            raise

    # bookkeeping ---------------------------------------------------------------------------
    def _events(self):
        for ev in self.link.poll_events():
            if ev.get("ev") != "log" or ev.get("seq") is None:
                continue
            seq = ev["seq"]
            if ev.get("type") == "boot":
                # a new boot: what the previous one still held in RAM is never committed by
                # this boot's flushes (its seqs may even be skipped: a capture saved before
                # the cut keeps its id, and the journal continues after it)
                for s in [s for s in self.seen if s < seq]:
                    self.orphans[s] = self.seen.pop(s)
            self.seen[seq] = (ev.get("type"), ev.get("data"))
            if ev.get("type") in CRITICAL:
                self.max_critical = max(self.max_critical, seq)
                for s in [s for s in self.seen if s <= seq]:
                    self.known.setdefault(s, self.seen.pop(s))

    def _req(self, op, **kw):
        r = self.link.request(op, timeout=kw.pop("timeout", 3), **kw)
        self._events()
        return r

    def _fail(self, msg):
        msg = "%s (seed %d; evidence in %s)" % (msg, self.seed, self.keep_evidence())
        self.stats["violations"].append(msg)
        raise Violation(msg)

    def keep_evidence(self):
        """Copy the flash image, console log and the checker's view for forensics."""
        import shutil
        out = os.path.join(rc.REPO, "build", "reliability_powerloss_violation")
        os.makedirs(out, exist_ok=True)
        for name in ("flash.img", "romfs.img", "console.log", "supervisor.log"):
            src = os.path.join(self.dir, name)
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(out, name))
        with open(os.path.join(out, "checker.json"), "w") as f:
            json.dump({"known": {str(k): v for k, v in sorted(self.known.items())[-300:]},
                       "seen": {str(k): v for k, v in sorted(self.seen.items())},
                       "max_critical": self.max_critical, "stats": self.stats}, f, indent=0)
        return out

    def _topup(self):
        """Stop the board, top the log up offline, start it again."""
        try:
            self.link.close()
        except Exception:
            pass
        virtual.stop(self.dir)
        written = topup_log(os.path.join(self.dir, "flash.img"))
        self.known.update(written)
        self.stats["filler_records"] += len(written)
        self.stats["topups"] += 1
        virtual.start(self.dir)
        self.board.refresh()
        self.link = rc.link(self.board)
        self.console_off = len(self.board.console_log())
        self._check(full=True)

    # one cut ---------------------------------------------------------------------------------
    def _cut_at(self, delay):
        """Schedule a power cut `delay` s from now; returns (thread, holder of the killed pid)."""
        out = {}

        def run():
            time.sleep(delay)
            out["pid"] = self.board.info()["interpreter_pid"]
            out["t"] = time.monotonic()
            virtual.control(self.dir, {"cmd": "reset", "cause": "power_on"})
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, out

    def _after_cut(self, out):
        """Wait for the boot that followed the cut and for NUT to serve."""
        pid = out["pid"]
        virtual.wait_for(lambda: (self.board.info()["interpreter_pid"] != pid
                                  and self.board.info().get("firmware")), 20,
                         "the board to boot after the cut", interval=0.01)
        t = self.board.wait_serving(15) + (time.monotonic() - out["t"])
        self.stats["max_boot_to_serving_s"] = max(self.stats["max_boot_to_serving_s"], t)

    def cycle(self):
        kind = self.rng.choice(("config", "config", "log", "log", "boot"))
        self.stats["cuts_" + kind] += 1
        acked = False
        new_cfg = None
        if kind == "config":
            self.cfg_n += 1
            new = rc.make_config(**{"site.name": "cfg-%d" % self.cfg_n,
                                    "policy.grace_s": 600 + self.cfg_n % 3000,
                                    "tiers": [{"name": rc.TIER, "hosts": [
                                        {"name": "h%02d" % i, "address": "10.0.%d.%d" % (
                                            self.cfg_n % 250, i + 1), "health": "tcp:22"}
                                        for i in range(24)]}]})
            new_cfg = fwconfig.validate(new)[0]
            text = json.dumps(new)
            # the whole exchange incl. the board's own reboot takes ~0.5-1.5 s
            th, out = self._cut_at(self.rng.uniform(0.0, 1.4))
            try:
                rc.upload_config(self.link, text)
                acked = True
                self.stats["commits_acked"] += 1
            except LinkError:
                pass
            th.join()
        elif kind == "log":
            th, out = self._cut_at(self.rng.uniform(0.05, 1.5))
            end = time.monotonic() + 1.6
            while time.monotonic() < end and th.is_alive():
                self.board.wires({"mains": "off"})
                time.sleep(self.rng.uniform(0.02, 0.15))
                self.board.wires({"mains": "on"})
                time.sleep(self.rng.uniform(0.05, 0.3))
            th.join()
            self.board.wires({"mains": "on"})
        else:  # boot: cut, then cut again while the next boot is under way
            th, out = self._cut_at(0.0)
            th.join()
            virtual.wait_for(lambda: self.board.info()["interpreter_pid"] != out["pid"], 20,
                             "a reboot")
            th, out = self._cut_at(self.rng.uniform(0.0, 0.4))
            th.join()
        self._after_cut(out)
        self.stats["cuts"] += 1
        self._check(full=self.stats["cuts"] % 20 == 0, acked=acked, new_cfg=new_cfg)

    # checks ------------------------------------------------------------------------------------
    def _check(self, full=False, acked=False, new_cfg=None):
        for attempt in range(3):
            try:
                self._check_once(full, acked, new_cfg)
                return
            except LinkError:
                # the board rebooted again under us (its own config reboot): wait and retry
                time.sleep(0.5)
                self.board.wait_serving(15)
        self._check_once(full, acked, new_cfg)

    def _check_once(self, full, acked, new_cfg):
        logtxt = self.board.console_log()
        if b"DEGRADED" in logtxt[self.console_off:]:
            self._fail("filesystem did not mount after cut %d" % self.stats["cuts"])
        ident = self._req("identify")
        if ident.get("safe_mode"):
            self._fail("safe mode after cut %d" % self.stats["cuts"])
        got = self._req("config_get")
        cfg = got["config"]
        if got["source"] == "defaults":
            self._fail("config fell back to defaults after cut %d" % self.stats["cuts"])
        if new_cfg is not None:
            if cfg == new_cfg:
                self.stats["config_new_after_cut"] += 1
                self.cfg_current = new_cfg
            elif cfg == self.cfg_current:
                if acked:
                    self._fail("commit acknowledged but the old config is in force")
                self.stats["config_old_after_cut"] += 1
            else:
                self._fail("config after cut is neither old nor new: %r" % cfg.get("site"))
        elif cfg != self.cfg_current:
            self._fail("config changed without a commit")
        self.console_off = len(logtxt)
        # the log
        frm = 0 if full else max(0, max(self.known or [0]) - 120)
        recs, first, last = rc.read_log(self.link, frm)
        self._events()
        if self.first_seen is not None and first is not None and first > self.first_seen:
            self.stats["rotations_seen"] += 1
        self.first_seen = first
        seqs = [r["seq"] for r in recs]
        if seqs != sorted(set(seqs)):
            self._fail("log_read not strictly increasing / duplicated after cut %d: %r"
                       % (self.stats["cuts"], seqs[:50]))
        got_map = {r["seq"]: (r["type"], r["data"]) for r in recs}
        for r in recs:
            if not isinstance(r["type"], str) or r["type"] == "other":
                self._fail("undecodable record %r" % r)
        lo = max(first or 0, frm)
        for seq, exp in self.known.items():
            if seq < lo:
                continue
            if got_map.get(seq) != exp:
                self._fail("committed record %d lost or changed after cut %d: %r != %r" % (
                    seq, self.stats["cuts"], got_map.get(seq), exp))
        for pool in (self.seen, self.orphans):
            for seq, exp in list(pool.items()):
                if seq in got_map and got_map[seq] != exp:
                    self.stats["seq_reused"] += 1
                    del pool[seq]
                elif seq not in got_map and (not seqs or seq < seqs[-1]):
                    self.stats["uncommitted_lost"] += 1
                    del pool[seq]
                elif seq in got_map and pool is self.orphans:
                    del pool[seq]  # it made it to flash after all
        # log_read also returns records still pending in RAM: what it returns is committed only
        # up to its last critical record (flushed with everything before it); the tail after
        # that is merely seen
        top = max([r["seq"] for r in recs if r["type"] in CRITICAL] + [self.max_critical])
        for seq, v in got_map.items():
            if seq <= top:
                self.known.setdefault(seq, v)
                self.seen.pop(seq, None)
            else:
                self.seen.setdefault(seq, v)
        self.stats["records_checked"] += len(recs)
        if full:
            self.stats["full_checks"] += 1
        # forget what rotated away
        if first:
            for seq in [s for s in self.known if s < first]:
                del self.known[seq]

    def close(self):
        try:
            self.link.close()
        except Exception:
            pass
        self.board.stop()


def run(kills, seed=None, budget_s=None, topup_every=25, workdir=None, log=print):
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="rel-powerloss-")
    t0 = time.monotonic()
    b = PowerLossBench(workdir, seed, log)
    try:
        while b.stats["cuts"] < kills:
            if budget_s and time.monotonic() - t0 > budget_s:
                break
            b.cycle()
            if b.stats["cuts"] % topup_every == 0:
                b._topup()
        b._check(full=True)
    finally:
        b.close()
        if own:
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)
    s = dict(b.stats, seed=b.seed, wall_s=round(time.monotonic() - t0, 1))
    s["max_boot_to_serving_s"] = round(s["max_boot_to_serving_s"], 3)
    return s


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--kills", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--budget-s", type=float, default=None)
    ap.add_argument("--topup-every", type=int, default=50)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    try:
        s = run(a.kills, a.seed, a.budget_s, a.topup_every)
    except Violation as e:
        print("VIOLATION:", e)
        return 1
    print(json.dumps(s, indent=1))
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(s, f, indent=1)
    return 1 if s["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
