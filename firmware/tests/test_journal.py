# Journal tests on a real littlefs2 image (a temp file through the virtual board's block device),
# mounted at /flash so the host filesystem stays visible.
import os
import struct
import sys

import vfs
from mpunit import TestCase

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, _here + "/../../host/powersentinel/virtual/rom")
from blockdev import FileBlockDev  # noqa: E402

from sentinel import journal as J  # noqa: E402
from sentinel.journal import Journal  # noqa: E402
from sentinel import journalread as JR  # noqa: E402

MNT = "/flash"


def _hex(n):
    return "".join("%02x" % b for b in os.urandom(n))


class _Flash:
    """A fresh littlefs2 image of `blocks` x 4 KiB mounted at /flash."""

    def __init__(self, blocks=128):
        self.path = "/tmp/ps_journal_%s.img" % _hex(4)
        try:
            blank = bytes(4096)
            with open(self.path, "wb") as f:
                for _ in range(blocks):
                    f.write(blank)
            self.f = open(self.path, "r+b")
            self.bd = FileBlockDev(self.f)
            vfs.VfsLfs2.mkfs(self.bd)
            self.mount()
        except Exception:
            os.remove(self.path)  # tearDown does not run when setUp fails
            raise

    def mount(self):
        vfs.mount(vfs.VfsLfs2(self.bd), MNT)

    def remount(self):  # what a reboot does to the filesystem
        vfs.umount(MNT)
        self.mount()

    def close(self):
        try:
            vfs.umount(MNT)
        except OSError:
            pass
        self.f.close()
        os.remove(self.path)


def _seg_files():
    return sorted(os.listdir(MNT + "/log"))


def _seqs(recs):
    return [r[0] for r in recs]


class JournalBase(TestCase):
    def setUp(self):
        self.fl = _Flash()

    def tearDown(self):
        self.fl.close()


class TestAppendRead(JournalBase):
    def test_roundtrip_and_fields(self):
        j = Journal(MNT, batch_n=100)
        self.assertIsNone(JR.first_seq(j))
        self.assertIsNone(j.last_seq())
        s1 = j.append("mains_lost", {"v": 12.5, "why": "rms"}, now_ms=1234, epoch=1700000000)
        s2 = j.append("boot", None, now_ms=1300, epoch=1700000001)
        s3 = j.append(3, b"\x00\xff\xa5", now_ms=1400)
        self.assertEqual((s1, s2, s3), (1, 2, 3))
        self.assertEqual(j.pending(), 3)
        self.assertEqual(j.flush(), 3)
        self.assertEqual(j.pending(), 0)
        recs = JR.read(j, 0, 10)
        self.assertEqual(recs[0], (1, 1700000000, 1234, "mains_lost", {"v": 12.5, "why": "rms"}))
        self.assertEqual(recs[1], (2, 1700000001, 1300, "boot", None))
        self.assertEqual(recs[2], (3, 0, 1400, "mains_lost", b"\x00\xff\xa5"))
        self.assertEqual((JR.first_seq(j), j.last_seq()), (1, 3))

    def test_read_window_and_pending_visible(self):
        j = Journal(MNT, batch_n=5)
        for k in range(12):
            j.append("test", {"k": k})
        self.assertEqual(j.pending(), 2)  # 10 flushed in two batches
        self.assertEqual(j.committed, 10)
        self.assertEqual(_seqs(JR.read(j, 4, 3)), [4, 5, 6])
        self.assertEqual(_seqs(JR.read(j, 9, 100)), [9, 10, 11, 12])  # 11, 12 still in RAM
        self.assertEqual(JR.read(j, 13, 10), [])
        self.assertEqual(j.last_seq(), 12)

    def test_reading_shares_the_batch_buffer_only_when_nothing_is_pending(self):
        # one 2 KB buffer for the journal's life: reads use the batch buffer once it is empty,
        # and never overwrite records still waiting in it
        j = Journal(MNT, batch_n=5)
        for k in range(7):
            j.append("test", {"k": k})
        self.assertEqual(j.pending(), 2)
        self.assertFalse(j._readbuf() is j._buf)
        self.assertEqual(_seqs(JR.read(j, 0, 100)), [1, 2, 3, 4, 5, 6, 7])
        self.assertEqual(JR.first_seq(j), 1)
        j.flush()
        self.assertEqual(_seqs(JR.read(j, 0, 100)), [1, 2, 3, 4, 5, 6, 7])  # the pending two landed
        self.assertIs(j._readbuf(), j._buf)
        self.assertEqual(_seqs(JR.read(j, 3, 2)), [3, 4])
        j.append("test", {"k": 7})
        self.assertEqual(JR.read(j, 8, 1)[0][3:], ("test", {"k": 7}))
        j.flush()
        self.assertEqual(_seqs(JR.read(Journal(MNT), 0, 100)), list(range(1, 9)))

    def test_unknown_type_kept_by_name(self):
        j = Journal(MNT)
        j.append("weird_event", {"a": 1}, critical=True)
        self.assertEqual(JR.read(j, 0, 1)[0][3:], ("weird_event", {"a": 1}))

    def test_epoch_fn(self):
        j = Journal(MNT, epoch_fn=lambda: 1234567)
        j.append("boot")
        self.assertEqual(JR.read(j, 0, 1)[0][1], 1234567)

    def test_payload_limit(self):
        j = Journal(MNT)
        with self.assertRaises(ValueError):
            j.append("test", {"x": "y" * 2000})
        self.assertEqual(j.next_seq(), 1)  # no seq burnt


class TestFlushPolicy(JournalBase):
    def test_count_trigger(self):
        j = Journal(MNT, batch_n=8)
        for k in range(7):
            j.append("test", {"k": k})
        self.assertEqual(j.flushes, 0)
        j.append("test", {"k": 7})
        self.assertEqual((j.flushes, j.pending()), (1, 0))

    def test_bytes_trigger(self):
        j = Journal(MNT, batch_n=1000, batch_bytes=J.MAX_RECORD + 100)
        big = {"x": "a" * 600}
        j.append("test", big)
        self.assertEqual(j.flushes, 0)
        j.append("test", big)  # does not fit: the first is flushed to make room
        self.assertEqual((j.flushes, j.pending()), (1, 1))
        self.assertEqual(_seqs(JR.read(j, 0, 5)), [1, 2])

    def test_age_trigger_and_wrap(self):
        j = Journal(MNT, batch_n=100, max_age_ms=1000)
        t0 = (1 << 30) - 300  # ticks_ms about to wrap
        j.append("test", {}, now_ms=t0)
        j.append("test", {}, now_ms=t0 + 500)
        self.assertFalse(j.due(t0 + 999))
        self.assertEqual(j.poll((t0 + 999) & 0x3FFFFFFF), 0)
        self.assertEqual(j.poll((t0 + 1000) & 0x3FFFFFFF), 2)  # measured from the first record
        self.assertFalse(j.due(t0 + 5000))  # nothing pending

    def test_critical_flushes_now(self):
        j = Journal(MNT, batch_n=100)
        j.append("test", {})
        j.append("mains_lost", {}, critical=True)
        self.assertEqual((j.flushes, j.pending(), j.committed), (1, 0, 2))

    def test_batching_saves_erases(self):
        bd = self.fl.bd
        pad = "w" * 40
        j = Journal(MNT, batch_n=1)
        e0 = bd.erases
        for k in range(48):
            j.append("test", {"k": k, "pad": pad})
        single = bd.erases - e0
        j = Journal(MNT, batch_n=16)
        e0 = bd.erases
        for k in range(48):
            j.append("test", {"k": k, "pad": pad})
        batched = bd.erases - e0
        # littlefs copies the tail block on each synced append (once past the inline size)
        self.assertGreaterEqual(single, 40)
        self.assertLess(batched * 8, single)


class TestRotation(JournalBase):
    def test_caps_and_order(self):
        j = Journal(MNT, seg_size=1024, max_segments=3, batch_n=4)
        for k in range(200):
            j.append("test", {"k": k, "pad": "x" * 20})
        j.flush()
        files = _seg_files()
        self.assertEqual(len(files), 3)
        for name, size in j.segments():
            self.assertLessEqual(size, 1024)
        first = JR.first_seq(j)
        self.assertGreater(first, 100)  # old segments were deleted
        self.assertEqual(int(files[0][:8], 16), first)  # named by first seq
        recs = JR.read(j, 0, 1000)
        self.assertEqual(_seqs(recs), list(range(first, 201)))
        for r in recs:
            self.assertEqual(r[4]["k"], r[0] - 1)
        # read from the middle of a later segment touches only the segments it needs
        self.assertEqual(_seqs(JR.read(j, 190, 3)), [190, 191, 192])

    def test_batch_never_straddles(self):
        j = Journal(MNT, seg_size=600, max_segments=4, batch_n=3)
        for k in range(30):
            j.append("test", {"k": k, "pad": "y" * 40})
        for name, size in j.segments()[:-1]:
            self.assertLessEqual(size, 600)
            self.assertGreater(size, 600 - 3 * 80)

    def test_extra_segment_trimmed_on_open(self):
        j = Journal(MNT, seg_size=400, max_segments=5, batch_n=2)
        for k in range(60):
            j.append("test", {"k": k, "p": "z" * 30})
        self.assertEqual(len(_seg_files()), 5)
        j2 = Journal(MNT, seg_size=400, max_segments=3)
        self.assertEqual(len(_seg_files()), 3)
        self.assertEqual(j2.last_seq(), 60)


class TestReopen(JournalBase):
    def test_seq_continues(self):
        j = Journal(MNT, batch_n=4)
        for k in range(10):
            j.append("test", {"k": k})
        j.flush()
        self.fl.remount()
        j = Journal(MNT, batch_n=4)
        self.assertEqual((JR.first_seq(j), j.last_seq(), j.next_seq()), (1, 10, 11))
        self.assertEqual(j.append("boot"), 11)
        j.flush()
        self.assertEqual(_seqs(JR.read(j, 0, 100)), list(range(1, 12)))

    def test_unflushed_records_lost_not_reused_wrongly(self):
        j = Journal(MNT, batch_n=100)
        for k in range(5):
            j.append("test", {"k": k})
        j.flush()
        j.append("test", {"k": 99})  # never flushed: lost at the "reset"
        self.fl.remount()
        j = Journal(MNT)
        self.assertEqual(j.next_seq(), 6)
        self.assertEqual(JR.read(j, 0, 100)[-1][4], {"k": 4})

    def test_seq_continues_across_rotation(self):
        j = Journal(MNT, seg_size=500, max_segments=2, batch_n=3)
        for k in range(100):
            j.append("test", {"k": k})
        j.flush()
        self.fl.remount()
        j = Journal(MNT, seg_size=500, max_segments=2, batch_n=3)
        self.assertEqual(j.next_seq(), 101)
        self.assertEqual(JR.read(j, 0, 1000)[-1][0], 100)


class TestRecovery(JournalBase):
    def _fill(self, n=10):
        j = Journal(MNT, batch_n=100)
        for k in range(n):
            j.append("test", {"k": k, "pad": "p" * 10})
        j.flush()
        return MNT + "/log/" + _seg_files()[-1]

    def test_torn_tail_truncated(self):
        path = self._fill()
        size = os.stat(path)[6]
        torn = J.encode_record(11, "test", {"k": 10, "pad": "p" * 10})
        with open(path, "ab") as f:
            f.write(torn[: len(torn) // 2])  # a record cut mid-write
        self.fl.remount()
        j = Journal(MNT, batch_n=100)
        self.assertEqual(j.recovered, len(torn) // 2)
        self.assertEqual(os.stat(path)[6], size)  # cut back to the last valid record
        self.assertEqual(j.next_seq(), 11)
        j.append("test", {"k": "after"}, critical=True)
        recs = JR.read(j, 0, 100)
        self.assertEqual(_seqs(recs), list(range(1, 12)))
        self.assertEqual(recs[-1][4], {"k": "after"})
        self.assertEqual(Journal(MNT).recovered, 0)  # clean now

    def test_torn_header_only_and_garbage(self):
        path = self._fill(3)
        with open(path, "ab") as f:
            f.write(b"\xa5\x01\xff")  # a header cut after 3 bytes
        j = Journal(MNT)
        self.assertEqual((j.recovered, j.next_seq()), (3, 4))
        with open(path, "ab") as f:
            f.write(b"\xa5" * 40)  # magic bytes everywhere, no record
        j = Journal(MNT)
        self.assertEqual((j.recovered, j.next_seq()), (40, 4))

    def test_newest_segment_all_garbage(self):
        j = Journal(MNT, seg_size=300, max_segments=4, batch_n=2)
        for k in range(12):
            j.append("test", {"k": k, "p": "q" * 20})
        files = _seg_files()
        newest = MNT + "/log/" + files[-1]
        name = int(files[-1][:8], 16)
        with open(newest, "wb") as f:
            f.write(b"\x00garbage\xa5\x00")
        j = Journal(MNT, seg_size=300, max_segments=4)
        self.assertNotIn(files[-1], _seg_files())
        self.assertEqual(j.next_seq(), name)  # never reuses a seq that may have been written
        self.assertEqual(JR.read(j, 0, 100)[-1][0], name - 1)

    def test_crc_corruption_skips_only_that_record(self):
        path = self._fill(10)
        rec_len = len(J.encode_record(1, "test", {"k": 0, "pad": "p" * 10}))
        with open(path, "r+b") as f:  # littlefs r+b rewrites in place (copy on write)
            f.seek(4 * rec_len + J.HDR + 3)  # inside record 5's payload
            b = f.read(1)
            f.seek(4 * rec_len + J.HDR + 3)
            f.write(bytes([b[0] ^ 0x01]))
        j = Journal(MNT)
        recs = JR.read(j, 0, 100)
        self.assertEqual(_seqs(recs), [1, 2, 3, 4, 6, 7, 8, 9, 10])
        for r in recs:
            self.assertEqual(r[4], {"k": r[0] - 1, "pad": "p" * 10})
        self.assertEqual(j.next_seq(), 11)

    def test_corrupt_length_field_resyncs(self):
        path = self._fill(6)
        rec_len = len(J.encode_record(1, "test", {"k": 0, "pad": "p" * 10}))
        with open(path, "r+b") as f:
            f.seek(2 * rec_len + 2)  # record 3's length: now claims a longer payload
            f.write(b"\xf0\x01")
        self.assertEqual(_seqs(JR.read(Journal(MNT), 0, 100)), [1, 2, 4, 5, 6])

    def test_decode_records_cpython_codec(self):
        blob = (J.encode_record(7, "dip", {"v": 150.0}, epoch=5, ms=9) + b"\x13\xa5junk"
                + J.encode_record(8, "x_custom", {"a": [1, 2]}) + J.encode_record(9, 2, b"raw"))
        self.assertEqual(JR.decode_records(blob), [
            (7, 5, 9, "dip", {"v": 150.0}), (8, 0, 0, "x_custom", {"a": [1, 2]}),
            (9, 0, 0, "reset", b"raw")])
        self.assertEqual(JR.decode_records(blob[:-1]), JR.decode_records(blob)[:2])
        self.assertEqual(JR.record_dict((1, 2, 3, "boot", None)),
                         {"seq": 1, "epoch": 2, "ms": 3, "type": "boot", "data": None})

    def test_crc32_matches_fallback(self):
        for data in (b"", b"abc", bytes(range(256)) * 3):
            self.assertEqual(J.crc32(data), J._crc_fallback(data))
        self.assertEqual(J.crc32(b"123456789"), 0xCBF43926)  # the standard check value


class TestFlashFull(TestCase):
    def test_full_flash_frees_oldest_segment(self):
        fl = _Flash(blocks=24)  # 96 KiB filesystem, segments far too large for it
        try:
            j = Journal(MNT, seg_size=16384, max_segments=20, batch_n=8)
            for k in range(1500):
                j.append("test", {"k": k, "pad": "f" * 40})
            j.flush()
            self.assertGreater(j.errors, 0)  # it did hit ENOSPC...
            self.assertEqual((j.last_error, j.dropped), (28, 0))
            self.assertEqual(j.pending(), 0)  # ...and recovered by dropping old segments
            seqs = []  # page through: read() holds its whole answer in RAM
            page = JR.read(j, 0, 100)
            while page:
                seqs += _seqs(page)
                page = JR.read(j, seqs[-1] + 1, 100)
            self.assertEqual(seqs[-1], 1500)
            self.assertEqual(seqs, list(range(seqs[0], 1501)))
        finally:
            fl.close()


class TestCaptures(JournalBase):
    def test_save_list_read(self):
        j = Journal(MNT, batch_n=100)
        j.append("mains_lost", {})
        data = bytes(range(256)) * 16
        cid = j.save_capture({"rate": 4000, "pre_ms": 100}, data, now_ms=5)
        self.assertEqual(cid, 2)  # the seq of its "capture" record
        self.assertEqual(j.pending(), 0)  # the announcing record is on flash
        self.assertEqual(JR.read(j, 2, 1)[0][3:], ("capture", {"bytes": 4096}))
        meta_len = len(b'{"rate":4000,"pre_ms":100}')
        self.assertEqual(j.list_captures(), [(2, 16 + meta_len + 4096 + 4)])
        meta, d = JR.read_capture(j, cid)
        self.assertEqual(meta, {"rate": 4000, "pre_ms": 100})
        self.assertEqual(d, data)
        self.assertIsNone(JR.read_capture(j, 99))

    def test_corrupt_capture_detected(self):
        j = Journal(MNT)
        cid = j.save_capture({"a": 1}, b"\x01" * 500)
        path = MNT + "/cap/%08x.cap" % cid
        with open(path, "r+b") as f:
            f.seek(300)
            f.write(b"\x02")
        with self.assertRaises(ValueError):
            JR.read_capture(j, cid)

    def test_count_and_bytes_caps(self):
        j = Journal(MNT, max_captures=3, max_capture_bytes=10000)
        ids = [j.save_capture({"i": i}, bytes([i]) * 1000) for i in range(5)]
        self.assertEqual([c[0] for c in j.list_captures()], ids[2:])  # oldest dropped
        ids.append(j.save_capture({"i": 9}, b"\x09" * 4500))
        ids.append(j.save_capture({"i": 10}, b"\x0a" * 4500))
        caps = j.list_captures()
        self.assertEqual([c[0] for c in caps], ids[-2:])  # bytes cap: 3 would exceed 10000
        self.assertLessEqual(sum(c[1] for c in caps), 10000)
        self.assertEqual(JR.read_capture(j, ids[-1])[1], b"\x0a" * 4500)
        with self.assertRaises(ValueError):
            j.save_capture({}, bytes(20000))

    def test_ids_survive_reopen_and_orphans(self):
        j = Journal(MNT, batch_n=100)
        cid = j.save_capture({}, b"abc")
        # a capture written while its record was still in RAM (reset before the flush)
        orphan = cid + 5
        with open(MNT + "/cap/%08x.cap" % cid, "rb") as f:
            blob = f.read()
        with open(MNT + "/cap/%08x.cap" % orphan, "wb") as f:
            f.write(blob)  # (its id field disagrees: read_capture must refuse it)
        with open(MNT + "/cap/junk.tmp", "wb") as f:
            f.write(b"half")
        self.fl.remount()
        j = Journal(MNT)
        self.assertEqual(j.next_seq(), orphan + 1)  # never reuses a capture id
        self.assertNotIn("junk.tmp", os.listdir(MNT + "/cap"))
        with self.assertRaises(ValueError):
            JR.read_capture(j, orphan)
        self.assertEqual(JR.read_capture(j, cid)[1], b"abc")
        self.assertEqual(j.save_capture({}, b"d"), orphan + 1)
