"""Event journal: append-only, CRC-protected records in rotating segment files, plus waveform
captures. Runs under MicroPython on the device; the record codec (`encode_record`, `TYPES`,
and `journalread.decode_records`) also runs under CPython so the host decodes what the device
sends. Reading (records by seq, the oldest kept, captures) is `journalread`'s, loaded only by
what reads.

Record format (version 1), little-endian, 21 + L bytes:
    off  size  field
    0    1     magic 0xA5 (also the resync marker after corruption)
    1    1     fmt: 0 = no data, 1 = JSON object (UTF-8), 2 = raw bytes
    2    2     L = payload length (<= MAX_PAYLOAD)
    4    4     seq: sequence number, +1 per record, monotonic across reboots and rotations
    8    4     epoch: RTC seconds since 1970 (0 = clock not set)
    12   4     uptime ms at append, modulo 2**32
    16   1     type code, index into TYPES (0 = "other": the name is the payload's "_t" key,
               so such a record always decodes with a dict, {} when appended without data)
    17   L     payload
    17+L 4     CRC32 (binascii.crc32) of bytes 0 .. 17+L-1
A reader takes a record only if its magic, fmt, length and CRC agree; otherwise it moves one byte
on and looks for the next magic byte, so a torn or flipped record costs that record only.

Files (under `base`, "/" on the device):
    log/XXXXXXXX.seg  segment; the name is the hex seq of its first record, so read(from_seq)
                      opens only the segments it needs. At most `max_segments` of at most
                      `seg_size` bytes (a batch never straddles two segments); oldest removed first.
    cap/XXXXXXXX.cap  capture; the id is the seq of the "capture" record that announces it:
                      "SCAP", u8 version 1, u8 0, u16 meta length M, u32 id, u32 data length D,
                      M bytes JSON meta, D bytes data, u32 CRC32 of everything before it.

Flash wear: littlefs copies a file's partly filled last block on every synced append (about one
erase per flush), so append() buffers records in RAM and flush() writes the batch with one
open/write/close. The batch is flushed when it reaches `batch_n` records or `batch_bytes`, when
poll(now_ms) finds it older than `max_age_ms`, or at once for a critical record.

Power loss: littlefs commits a file's new size only at close, so a killed flush leaves the
segment as it was before; on other filesystems a torn tail is possible, and open() truncates
the newest segment after its last valid record (copy + atomic rename) before appending.
"""
import binascii
import json
import os
import struct

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:

    def const(x):
        return x


MAGIC = const(0xA5)
HDR = const(17)
MAX_PAYLOAD = const(1024)
MAX_RECORD = const(1045)  # HDR + MAX_PAYLOAD + 4
FMT_NONE = const(0)
FMT_JSON = const(1)
FMT_BYTES = const(2)
_SCAN_BUF = const(2048)  # >= MAX_RECORD, so one refill always holds a whole record
_CAP_HDR = const(16)
_ENOSPC = const(28)

# Type codes: append only, never renumber (stored on flash and decoded by the host).
TYPES = (
    "other",  # 0: name carried in data["_t"]
    "boot",  # 1
    "reset",  # 2
    "mains_lost",  # 3
    "mains_ok",  # 4
    "dip",  # 5
    "swell",  # 6
    "interruption",  # 7
    "freq",  # 8
    "ups_status",  # 9
    "ups_link_lost",  # 10
    "ups_link_ok",  # 11
    "state",  # 12 policy state change
    "shutdown_start",  # 13
    "tier_fsd",  # 14
    "tier_done",  # 15
    "tier_timeout",  # 16
    "ups_off",  # 17
    "power_on",  # 18
    "wol",  # 19
    "host_up",  # 20
    "host_timeout",  # 21
    "nut_login",  # 22
    "nut_logout",  # 23
    "config",  # 24
    "drill",  # 25
    "capture",  # 26
    "time_set",  # 27
    "watchdog",  # 28
    "error",  # 29
    "journal",  # 30
    "console",  # 31
    "test",  # 32 test harnesses and benchmarks
)


def _crc_fallback(data, crc=0):
    # Nibble-table CRC32 for builds without binascii.crc32 (slow but small).
    t = (0, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
         0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278,
         0xBDBDF21C)
    crc = ~crc & 0xFFFFFFFF
    for b in data:
        crc ^= b
        crc = (crc >> 4) ^ t[crc & 15]
        crc = (crc >> 4) ^ t[crc & 15]
    return ~crc & 0xFFFFFFFF


_crc32 = getattr(binascii, "crc32", None) or _crc_fallback


def crc32(data, crc=0):
    return _crc32(data, crc) & 0xFFFFFFFF


def _dumps(obj):
    try:
        return json.dumps(obj, separators=(",", ":"))
    except TypeError:  # ports built without separators support
        return json.dumps(obj)


def type_code(t):
    """Type name or code -> code; unknown names map to 0 ("other")."""
    if isinstance(t, int):
        if 0 <= t < 256:
            return t
        raise ValueError("type code")
    try:
        return TYPES.index(t)
    except ValueError:
        return 0


def _payload(t, data):
    # -> (type code, fmt, payload bytes)
    code = type_code(t)
    if code == 0 and not isinstance(t, int):
        data = dict(data) if data else {}
        data["_t"] = t
    if data is None:
        return code, FMT_NONE, b""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return code, FMT_BYTES, bytes(data)
    return code, FMT_JSON, _dumps(data).encode()


def pack_record(buf, off, seq, epoch, ms, code, fmt, payload):
    """Write one record into `buf` at `off`; return the offset after it."""
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise ValueError("record payload > %d bytes" % MAX_PAYLOAD)
    struct.pack_into("<BBHIIIB", buf, off, MAGIC, fmt, n, seq & 0xFFFFFFFF, epoch & 0xFFFFFFFF,
                     ms & 0xFFFFFFFF, code)
    end = off + HDR + n
    buf[off + HDR:end] = payload
    struct.pack_into("<I", buf, end, crc32(memoryview(buf)[off:end]))
    return end + 4


def encode_record(seq, t, data=None, epoch=0, ms=0):
    """One record as bytes (host tools and tests; the device packs into its batch buffer)."""
    code, fmt, p = _payload(t, data)
    buf = bytearray(HDR + len(p) + 4)
    pack_record(buf, 0, seq, epoch, ms, code, fmt, p)
    return bytes(buf)


def _check(mv, i, n):
    """Length of a valid record at mv[i:n], 0 if more bytes are needed, -1 if not a record."""
    if n - i < HDR:
        return 0
    if mv[i] != MAGIC or mv[i + 1] > FMT_BYTES:
        return -1
    ln = mv[i + 2] | (mv[i + 3] << 8)
    if ln > MAX_PAYLOAD:
        return -1
    end = i + HDR + ln
    if end + 4 > n:
        return 0
    if crc32(mv[i:end]) != struct.unpack_from("<I", mv, end)[0]:
        return -1
    return end + 4 - i


def _seq_at(mv, i):
    return struct.unpack_from("<I", mv, i + 4)[0]


def _next_magic(buf, i, n):
    j = buf.find(b"\xa5", i, n)
    return n if j < 0 else j


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass  # exists


def _ticks_diff(a, b):
    # a - b for millisecond counters that wrap at 2**30 (MicroPython ticks_ms) or never wrap.
    return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000


class Journal:
    def __init__(self, base="/", seg_size=32768, max_segments=8, batch_n=32, batch_bytes=2048,
                 max_age_ms=30000, max_captures=16, max_capture_bytes=196608, epoch_fn=None):
        if batch_bytes < MAX_RECORD:
            batch_bytes = MAX_RECORD
        if max_segments < 2:
            raise ValueError("max_segments >= 2")
        base = base.rstrip("/")
        self.log_dir = base + "/log"
        self.cap_dir = base + "/cap"
        self.seg_size = seg_size
        self.max_segments = max_segments
        self.batch_n = batch_n
        self.max_age_ms = max_age_ms
        self.max_captures = max_captures
        self.max_capture_bytes = max_capture_bytes
        self.epoch_fn = epoch_fn
        self._buf = bytearray(batch_bytes)  # pending records, preallocated once
        self._n = 0  # bytes pending
        self._pend = 0  # records pending
        self._pend_first = 0  # seq of the first pending record
        self._pend_ms = 0  # now_ms of the first pending record
        self._segs = []  # first-seq names of the segments, oldest first
        self._cur_size = 0  # bytes in the newest segment
        self._next = 1
        self.committed = 0  # last seq known to be on flash
        # counters (stats())
        self.appended = 0
        self.flushes = 0
        self.dropped = 0
        self.errors = 0
        self.last_error = 0
        self.recovered = 0  # torn-tail bytes cut at open
        self.dropped_captures = 0
        self._open()

    # ---- paths and scanning -------------------------------------------------------------
    def _seg_path(self, name):
        return "%s/%08x.seg" % (self.log_dir, name)

    def _list(self, d, ext):
        out = []
        for fn in os.listdir(d):
            if fn.endswith(ext) and len(fn) == 8 + len(ext):
                try:
                    out.append(int(fn[:8], 16))
                except ValueError:
                    pass
        out.sort()
        return out

    def _readbuf(self):
        # Reading shares the batch buffer (one 2 KB buffer fewer on the heap for the board's
        # life): free whenever no record is pending, as after the flush a log read does first.
        # With records pending (a flush failing on flash), a temporary buffer for this read.
        return bytearray(_SCAN_BUF) if self._n else self._buf

    def _scan(self, f, buf):
        """Yield (file offset, buf index, length) of each valid record of an open file; the
        record is buf[index:index+length] (buf from _readbuf()), valid until the next
        iteration. The caller
        owns the file, so leaving the loop early closes it (MicroPython does not finalise
        abandoned generators)."""
        mv = memoryview(buf)
        cap = len(buf)
        n = f.readinto(buf) or 0
        eof = n < cap
        base = 0
        i = 0
        while True:
            if i >= n:
                if eof:
                    return
                base += n
                i = 0
                n = f.readinto(buf) or 0
                eof = n < cap
                continue
            r = _check(mv, i, n)
            if r > 0:
                yield base + i, i, r
                i += r
            elif r == 0 and not eof and i > 0:
                k = n - i  # keep the partial record, refill behind it
                buf[0:k] = buf[i:n]
                base += i
                i = 0
                got = f.readinto(mv[k:]) or 0
                n = k + got
                eof = got < cap - k
            else:  # corrupt, or a partial record at the end of the file: resync
                i = _next_magic(buf, i + 1, n)

    def _seg_tail(self, name):
        # -> (last valid seq or -1, offset after it, file size)
        path = self._seg_path(name)
        last = -1
        end = 0
        buf = self._readbuf()
        with open(path, "rb") as f:
            for off, i, r in self._scan(f, buf):
                last = _seq_at(buf, i)
                end = off + r
        return last, end, os.stat(path)[6]

    def _truncate(self, path, size):
        # MicroPython files cannot truncate: copy the valid prefix, then rename over (atomic).
        tmp = self.log_dir + "/trunc.tmp"
        buf = self._readbuf()
        mv = memoryview(buf)
        with open(path, "rb") as src:
            with open(tmp, "wb") as dst:
                left = size
                while left > 0:
                    k = src.readinto(mv[:min(left, len(buf))])
                    if not k:
                        break
                    dst.write(mv[:k])
                    left -= k
        os.rename(tmp, path)

    def _open(self):
        _mkdir(self.log_dir)
        _mkdir(self.cap_dir)
        for d in (self.log_dir, self.cap_dir):
            for fn in os.listdir(d):
                if fn.endswith(".tmp"):  # a copy or capture cut short by a reset
                    os.remove(d + "/" + fn)
        segs = self._list(self.log_dir, ".seg")
        while len(segs) > self.max_segments:  # a reset between writing a new segment and trimming
            os.remove(self._seg_path(segs.pop(0)))
        nxt = 1
        if segs:
            nxt = segs[-1]  # the newest segment's first seq was at least reserved
        last = -1
        while segs:
            name = segs[-1]
            last, end, size = self._seg_tail(name)
            if end < size:
                self.recovered += size - end
                if end:
                    try:
                        self._truncate(self._seg_path(name), end)
                    except OSError:  # flash full: readers skip the torn bytes anyway
                        end = size
            if last >= 0:
                self._cur_size = end
                break
            # no valid record in the newest segment: drop it and look at the one before
            os.remove(self._seg_path(name))
            segs.pop()
        self._segs = segs
        if last >= 0:
            nxt = max(nxt, last + 1)
            self.committed = last
        caps = self._list(self.cap_dir, ".cap")
        if caps:  # a capture whose record was still in RAM at the reset keeps its id
            nxt = max(nxt, caps[-1] + 1)
        self._next = nxt

    # ---- writing --------------------------------------------------------------------------
    def append(self, t, data=None, now_ms=0, epoch=None, critical=False):
        """Buffer one record; flush if the batch is full or `critical`. Returns its seq."""
        code, fmt, p = _payload(t, data)
        need = HDR + len(p) + 4
        if len(p) > MAX_PAYLOAD:
            raise ValueError("record payload > %d bytes" % MAX_PAYLOAD)
        if self._n + need > len(self._buf):
            self.flush()
            if self._n + need > len(self._buf):  # flash failing: keep the newest events
                self.dropped += self._pend
                self._n = 0
                self._pend = 0
        if epoch is None:
            epoch = self.epoch_fn() if self.epoch_fn else 0
        seq = self._next
        self._next = seq + 1
        if not self._pend:
            self._pend_first = seq
            self._pend_ms = now_ms
        self._n = pack_record(self._buf, self._n, seq, epoch, now_ms, code, fmt, p)
        self._pend += 1
        self.appended += 1
        if critical or self._pend >= self.batch_n:
            self.flush()
        return seq

    def due(self, now_ms):
        """True when the pending batch is older than max_age_ms."""
        return self._pend > 0 and _ticks_diff(now_ms, self._pend_ms) >= self.max_age_ms

    def poll(self, now_ms):
        """Call periodically: flush when the pending batch is too old. Returns records written."""
        return self.flush() if self.due(now_ms) else 0

    def pending(self):
        return self._pend

    def flush(self):
        """Write the pending batch with one open/write/close. Returns the number of records
        written (0 if none pending or on a flash error: then they stay pending, see stats())."""
        if not self._pend:
            return 0
        for attempt in (0, 1):
            try:
                self._write_batch()
                break
            except OSError as e:
                self.errors += 1
                self.last_error = e.args[0] if e.args else -1
                # flash full: give up the oldest segment and try once more
                if attempt or len(self._segs) < 2 or self.last_error != _ENOSPC:
                    return 0
                try:
                    os.remove(self._seg_path(self._segs.pop(0)))
                except OSError:
                    return 0
        n = self._pend
        self.committed = self._next - 1
        self._n = 0
        self._pend = 0
        self.flushes += 1
        return n

    def _write_batch(self):
        new = not self._segs or (self._cur_size and self._cur_size + self._n > self.seg_size)
        name = self._pend_first if new else self._segs[-1]
        with open(self._seg_path(name), "ab") as f:
            f.write(memoryview(self._buf)[:self._n])
        if new:
            self._segs.append(name)
            self._cur_size = self._n
            # the new segment is on flash before the oldest goes
            while len(self._segs) > self.max_segments:
                os.remove(self._seg_path(self._segs.pop(0)))
        else:
            self._cur_size += self._n

    # ---- reading: sentinel.journalread ------------------------------------------------------
    def last_seq(self):
        """Seq of the newest record (pending included), None if empty."""
        if self._pend:
            return self._next - 1
        return self.committed if self.committed else None

    def next_seq(self):
        return self._next

    def segments(self):
        """[(first seq name, size bytes)] oldest first."""
        return [(s, os.stat(self._seg_path(s))[6]) for s in self._segs]

    def stats(self):
        return {"next": self._next, "committed": self.committed, "pending": self._pend,
                "appended": self.appended, "flushes": self.flushes, "dropped": self.dropped,
                "errors": self.errors, "last_error": self.last_error,
                "recovered": self.recovered, "segments": len(self._segs),
                "seg_bytes": self._cur_size}

    # ---- captures -------------------------------------------------------------------------
    def _cap_path(self, cid):
        return "%s/%08x.cap" % (self.cap_dir, cid)

    def save_capture(self, meta, data, now_ms=0, epoch=None):
        """Store a waveform capture (meta: small dict, data: bytes-like) and append a "capture"
        record announcing it (flushed at once). Returns the capture id (= that record's seq)."""
        mj = _dumps(meta or {}).encode()
        dl = len(data)
        if _CAP_HDR + len(mj) + dl + 4 > self.max_capture_bytes:
            raise ValueError("capture larger than max_capture_bytes")
        cid = self.append("capture", {"bytes": dl}, now_ms, epoch)
        hdr = bytearray(_CAP_HDR)
        struct.pack_into("<4sBBHII", hdr, 0, b"SCAP", 1, 0, len(mj), cid, dl)
        crc = crc32(hdr)
        crc = crc32(mj, crc)
        crc = crc32(data, crc)
        tmp = self.cap_dir + "/cap.tmp"
        with open(tmp, "wb") as f:
            f.write(hdr)
            f.write(mj)
            f.write(data)
            f.write(struct.pack("<I", crc))
        os.rename(tmp, self._cap_path(cid))  # whole or absent after a reset
        self.flush()
        self._trim_captures()
        return cid

    def _trim_captures(self):
        caps = self.list_captures()
        total = 0
        for c in caps:
            total += c[1]
        while len(caps) > 1 and (len(caps) > self.max_captures or total > self.max_capture_bytes):
            cid, size = caps.pop(0)
            os.remove(self._cap_path(cid))
            total -= size
            self.dropped_captures += 1

    def list_captures(self):
        """[(id, file size bytes)] oldest first."""
        return [(c, os.stat(self._cap_path(c))[6]) for c in self._list(self.cap_dir, ".cap")]
