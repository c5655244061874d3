"""Reading the journal (`sentinel.journal`): records by sequence number, the seq of the oldest
kept, captures, and the decoding half of the record codec (also run by the host under CPython).
Only what reads imports it (the console's log and capture reads, the alerts outbox), not the
boot: boards without ROMFS hold the code of every loaded module in RAM, so the reading code
stays off the heap of a sentinel that is only writing. Works on a `Journal` through its
segment list, its scan of a segment and its batch buffer."""
import json
import struct

from sentinel.journal import FMT_BYTES, FMT_JSON, HDR, TYPES, _check, _next_magic, _seq_at, crc32

_CAP_HDR = 16  # journal's capture header size


def _decode(mv, i):
    """The record at mv[i] (already checked) -> (seq, epoch, uptime_ms, type, data)."""
    fmt = mv[i + 1]
    ln = mv[i + 2] | (mv[i + 3] << 8)
    seq, epoch, ms = struct.unpack_from("<III", mv, i + 4)
    code = mv[i + 16]
    name = TYPES[code] if code < len(TYPES) else "type%d" % code
    p = bytes(mv[i + HDR:i + HDR + ln])
    data = None
    if fmt == FMT_JSON:
        try:
            data = json.loads(p)
        except ValueError:
            data = p
        if code == 0 and isinstance(data, dict) and "_t" in data:
            name = data.pop("_t")
    elif fmt == FMT_BYTES:
        data = p
    return (seq, epoch, ms, name, data)


def decode_records(blob):
    """All valid records in a byte string (a segment file or a dump), in stored order, skipping
    corrupt bytes. CPython and MicroPython."""
    mv = memoryview(blob)
    n = len(blob)
    i = 0
    out = []
    while i < n:
        r = _check(mv, i, n)
        if r > 0:
            out.append(_decode(mv, i))
            i += r
        else:
            i = _next_magic(blob, i + 1, n)
    return out


def record_dict(rec):
    """Record tuple -> dict (for JSON transport over the console)."""
    return {"seq": rec[0], "epoch": rec[1], "ms": rec[2], "type": rec[3], "data": rec[4]}


def read(j, from_seq=0, max_n=32):
    """Up to max_n records with seq >= from_seq, oldest first, including those not yet
    flushed: list of (seq, epoch, uptime_ms, type, data). Corrupt records are skipped,
    and seqs are strictly increasing."""
    out = []
    last = from_seq - 1
    segs = j._segs
    k = 0
    while k + 1 < len(segs) and segs[k + 1] <= from_seq:
        k += 1
    buf = j._readbuf()
    for name in segs[k:]:
        try:
            f = open(j._seg_path(name), "rb")
        except OSError:
            continue  # removed by a flush that freed space
        with f:
            for off, i, r in j._scan(f, buf):
                if _seq_at(buf, i) > last:
                    rec = _decode(buf, i)
                    out.append(rec)
                    last = rec[0]
                    if len(out) >= max_n:
                        return out
    mv = memoryview(j._buf)
    i = 0
    while i < j._n and len(out) < max_n:
        r = _check(mv, i, j._n)
        if _seq_at(mv, i) > last:
            rec = _decode(mv, i)
            out.append(rec)
            last = rec[0]
        i += r
    return out


def first_seq(j):
    """Seq of the oldest record kept (flushed or pending), None if empty."""
    buf = j._readbuf() if j._segs else None
    for name in j._segs:
        with open(j._seg_path(name), "rb") as f:
            for off, i, r in j._scan(f, buf):
                return _seq_at(buf, i)
    return j._pend_first if j._pend else None


def read_capture(j, cid):
    """-> (meta dict, data bytes), None if no such capture; ValueError if its CRC fails."""
    try:
        f = open(j._cap_path(cid), "rb")
    except OSError:
        return None
    with f:
        blob = f.read()
    if len(blob) < _CAP_HDR + 4 or blob[:4] != b"SCAP":
        raise ValueError("capture %d: bad header" % cid)
    ver, _, ml, id2, dl = struct.unpack_from("<BBHII", blob, 4)
    end = _CAP_HDR + ml + dl
    if ver != 1 or id2 != cid or end + 4 != len(blob):
        raise ValueError("capture %d: bad header" % cid)
    if crc32(memoryview(blob)[:end]) != struct.unpack_from("<I", blob, end)[0]:
        raise ValueError("capture %d: CRC mismatch" % cid)
    return json.loads(blob[_CAP_HDR:_CAP_HDR + ml]), blob[_CAP_HDR + ml:end]
