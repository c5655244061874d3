"""The device's event log, copied incrementally into SQLite on the host.

Records are keyed by (device, gen, seq). The board numbers its records with a sequence that
continues across reboots and log rotation, so asking for `from_seq = last stored + 1` resumes
exactly where the previous pull stopped and a record is never stored twice. Two things can
break the sequence, and both leave a row in `gaps` rather than passing silently:
- rotation: the board reports `first` (its oldest record); if that is past the next record we
  need, the records in between are gone for good (reason "rotated");
- a board whose sequence went backwards (flash erased, or another board answering with the same
  id): the store starts a new generation `gen` for the device (reason "restarted"), so the old
  copies are kept and the new records do not collide with them.
"""
import json
import os
import sqlite3
import time

from rich.table import Table

from .errors import PowerSentinelError

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    device TEXT NOT NULL, gen INTEGER NOT NULL, seq INTEGER NOT NULL,
    epoch INTEGER, ms INTEGER, type TEXT NOT NULL, data TEXT, pulled REAL NOT NULL,
    PRIMARY KEY (device, gen, seq));
CREATE TABLE IF NOT EXISTS gaps (
    device TEXT NOT NULL, gen INTEGER NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER,
    reason TEXT NOT NULL, noticed REAL NOT NULL, PRIMARY KEY (device, gen, from_seq, reason));
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY, gen INTEGER NOT NULL DEFAULT 0, board TEXT, firmware TEXT,
    last_pull REAL);
"""

READ_MAX = 32  # records per log_read (the board's limit)


class LogStoreError(PowerSentinelError):
    """The log database cannot be opened or is not ours."""


def default_db():
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "powersentinel", "logs.sqlite")


class LogStore:
    def __init__(self, path=None):
        self.path = path or default_db()
        d = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(d, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=10)
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise LogStoreError("cannot use log database %s: %s" % (self.path, e))

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- cursor ----------------------------------------------------------------------------------
    def gen(self, device):
        r = self.db.execute("SELECT gen FROM devices WHERE device=?", (device,)).fetchone()
        return r[0] if r else 0

    def last_seq(self, device, gen=None):
        gen = self.gen(device) if gen is None else gen
        r = self.db.execute("SELECT MAX(seq) FROM records WHERE device=? AND gen=?",
                            (device, gen)).fetchone()
        g = self.db.execute("SELECT MAX(to_seq) FROM gaps WHERE device=? AND gen=? AND "
                            "reason='rotated'", (device, gen)).fetchone()
        vals = [v for v in (r[0], g[0]) if v is not None]
        return max(vals) if vals else None

    def devices(self):
        return [r[0] for r in self.db.execute("SELECT device FROM devices ORDER BY device")]

    def _touch(self, device, ident):
        self.db.execute("INSERT INTO devices(device, gen, board, firmware, last_pull) "
                        "VALUES (?, 0, ?, ?, ?) ON CONFLICT(device) DO UPDATE SET "
                        "board=excluded.board, firmware=excluded.firmware, "
                        "last_pull=excluded.last_pull",
                        (device, (ident or {}).get("board"), (ident or {}).get("firmware"),
                         time.time()))

    # -- writing ---------------------------------------------------------------------------------
    def add(self, device, gen, recs):
        """Store records; returns those that were new (duplicates are ignored)."""
        new = []
        now = time.time()
        for r in recs:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO records(device, gen, seq, epoch, ms, type, data, pulled) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (device, gen, int(r["seq"]), r.get("epoch"), r.get("ms"), str(r.get("type")),
                 json.dumps(r.get("data"), sort_keys=True), now))
            if cur.rowcount:
                new.append(r)
        return new

    def add_gap(self, device, gen, from_seq, to_seq, reason):
        self.db.execute("INSERT OR IGNORE INTO gaps VALUES (?,?,?,?,?,?)",
                        (device, gen, from_seq, to_seq, reason, time.time()))
        return {"gap": True, "device": device, "gen": gen, "from_seq": from_seq,
                "to_seq": to_seq, "reason": reason}

    # -- reading ---------------------------------------------------------------------------------
    def rows(self, device=None, last=None):
        """Records and gap notices in order: dicts with kind "record" or "gap". `last` keeps
        only the newest N records (and the gaps among them)."""
        where, args = ("WHERE device=?", (device,)) if device else ("", ())
        recs = self.db.execute("SELECT device, gen, seq, epoch, ms, type, data FROM records %s "
                               "ORDER BY device, gen, seq" % where, args).fetchall()
        gaps = self.db.execute("SELECT device, gen, from_seq, to_seq, reason FROM gaps %s "
                               "ORDER BY device, gen, from_seq" % where, args).fetchall()
        out = [{"kind": "record", "device": d, "gen": g, "seq": s, "epoch": e, "ms": m,
                "type": t, "data": json.loads(x) if x else None}
               for d, g, s, e, m, t, x in recs]
        out += [{"kind": "gap", "device": d, "gen": g, "seq": f, "from_seq": f, "to_seq": t,
                 "reason": r} for d, g, f, t, r in gaps]
        # a gap sorts before the first record after it ("restarted" gaps head their generation)
        out.sort(key=lambda r: (r["device"], r["gen"], r["seq"], r["kind"] != "gap"))
        if last:
            kept, n = [], 0
            for r in reversed(out):
                if r["kind"] == "record":
                    if n >= last:
                        break
                    n += 1
                kept.append(r)
            out = kept[::-1]
        return out


def device_id(ident, override=None):
    """(the board's stable identity, note or None). The firmware reports device_id (its chip's
    unique id); for a firmware without it the board's name is used, with a note saying so
    (two such boards would share one log: name them with --device)."""
    if override:
        return override, None
    if ident.get("device_id"):
        return str(ident["device_id"]), None
    name = str(ident.get("board") or "board")
    return name, ("the firmware reports no device_id; storing its log as %r (name the board "
                  "with --device)" % name)


def read(link, types=None, from_seq=0):
    """The board's records from `from_seq` on, of these `types` (None: every type), read in
    batches straight from the link, without a store (tests, benchmarks, quick looks)."""
    out, frm = [], from_seq
    while True:
        r = link.request("log_read", from_seq=frm, max=READ_MAX)
        recs = r["records"]
        out += [x for x in recs if types is None or x["type"] in types]
        if not recs or recs[-1]["seq"] >= (r["last"] or 0):
            return out
        frm = recs[-1]["seq"] + 1


def pull(link, store, device, ident=None, progress=None, max_batches=100000):
    """Copy the board's new records into the store. Returns the list of new items in order:
    record dicts (seq, epoch, ms, type, data) and gap dicts ({"gap": True, ...})."""
    store._touch(device, ident)
    gen = store.gen(device)
    last = store.last_seq(device, gen)
    nxt = 1 if last is None else last + 1
    out = []
    for _ in range(max_batches):
        r = link.request("log_read", from_seq=nxt, max=READ_MAX)
        recs = r.get("records") or []
        first, dev_last = r.get("first"), r.get("last")
        if dev_last is not None and last is not None and dev_last < last:
            # the board's numbering went backwards: a new log, not a continuation of ours
            gen += 1
            store.db.execute("UPDATE devices SET gen=? WHERE device=?", (gen, device))
            out.append(store.add_gap(device, gen, first if first is not None else 1, None,
                                     "restarted"))
            last, nxt = None, 1
            store.db.commit()
            continue
        if first is not None and nxt < first:
            out.append(store.add_gap(device, gen, nxt, first - 1, "rotated"))
            nxt = first
            if not recs:
                continue
        if not recs:
            break
        for rec in recs:
            if rec.get("seq") is None or rec["seq"] < nxt:
                raise ValueError("the board sent seq %r when asked from %d" % (rec.get("seq"), nxt))
        out += store.add(device, gen, recs)
        nxt = recs[-1]["seq"] + 1
        last = recs[-1]["seq"]
        store.db.commit()
        if progress:
            progress(last, dev_last)
        if dev_last is not None and last >= dev_last:
            break
    store.db.commit()
    return out


# -- presentation ----------------------------------------------------------------------------------

def when(epoch, ms=None):
    if epoch:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
    return "+%.3f s" % ((ms or 0) / 1000.0) if ms is not None else "-"


def gap_text(g):
    if g["reason"] == "rotated":
        return "records %d..%d were rotated off the board before they were pulled" % (
            g["from_seq"], g["to_seq"])
    return "the board's log restarted at seq %d (flash erased, or another board with the " \
           "same id): records kept as generation %d" % (g["from_seq"], g["gen"])


def data_text(d):
    if isinstance(d, dict):
        return " ".join("%s=%s" % (k, json.dumps(v) if not isinstance(v, str) else v)
                        for k, v in d.items())
    return "" if d is None else json.dumps(d)


def json_line(item, device=None):
    if item.get("gap") or item.get("kind") == "gap":
        return json.dumps({"gap": True, "device": item.get("device", device),
                           "gen": item.get("gen"), "from_seq": item["from_seq"],
                           "to_seq": item.get("to_seq"), "reason": item["reason"],
                           "notice": gap_text(item)})
    return json.dumps({"device": item.get("device", device), "seq": item["seq"],
                       "epoch": item.get("epoch"), "ms": item.get("ms"),
                       "type": item.get("type"), "data": item.get("data")})


def table(items, title=None):
    t = Table(title=title)
    t.add_column("seq", justify="right")
    t.add_column("time")
    t.add_column("type", style="bold")
    t.add_column("data", overflow="fold")
    for it in items:
        if it.get("gap") or it.get("kind") == "gap":
            t.add_row("", "", "[yellow]gap[/yellow]", "[yellow]%s[/yellow]" % gap_text(it))
        else:
            t.add_row(str(it["seq"]), when(it.get("epoch"), it.get("ms")), str(it.get("type")),
                      data_text(it.get("data")))
    return t
