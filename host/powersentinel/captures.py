"""Waveform captures: list them on the board, pull them into files `powersentinel analyze` reads.

A capture on the board is int16 little-endian samples (ADC counts) plus a small JSON meta;
with several mains channels, the samples interleave them and the meta names them
(`channels`, `channel_vpc`): the files then hold one column per channel, named.
Pulled with capture_read in pieces of at most 1536 bytes, checked for length, and written with
powersentinel.analysis.readers.write_capture (NAME.npz, or NAME.wav + NAME.json), with the
device's full meta beside it in NAME.meta.json. Files are written under a temporary name and
renamed, so an interrupted pull never leaves a half capture that looks whole; a capture whose
file exists is skipped (pass `force` to fetch it again).
"""
import base64
import json
import os
import time

import numpy as np

from .analysis.readers import write_capture
from .errors import PowerSentinelError

READ_MAX = 1536


class CaptureError(PowerSentinelError):
    """A capture that cannot be pulled or written (one line)."""


def _first(meta, *keys, default=None):
    for k in keys:
        if meta.get(k) is not None:
            return meta[k]
    return default


def describe(meta, cfg_mains=None):
    """The analysis parameters of a capture: sample_rate, volts_per_count, nominal_v,
    nominal_hz, start_time (epoch s or None) and event type. The device meta is authoritative;
    the board's mains config (if given) fills what the meta lacks."""
    m = cfg_mains or {}
    rate = _first(meta, "sample_rate", "rate", default=m.get("sample_rate"))
    vpc = _first(meta, "volts_per_count", default=m.get("volts_per_count"))
    if rate is None or vpc is None:
        raise CaptureError("capture meta lacks %s" % ("sample_rate" if rate is None else "volts_per_count"))
    start = _first(meta, "start_epoch", "epoch", "start_time")
    if isinstance(start, (int, float)) and start <= 0:
        start = None  # the board's clock was not set
    return {"sample_rate": float(rate), "volts_per_count": float(vpc),
            "nominal_v": float(_first(meta, "nominal_v", default=m.get("nominal_v", 230.0))),
            "nominal_hz": float(_first(meta, "nominal_hz", default=m.get("nominal_hz", 50))),
            "start_time": start, "event": _first(meta, "event", "type", default="event")}


def list_captures(link):
    r = link.request("capture_list")
    if not isinstance(r, list):
        raise CaptureError("the board sent a capture_list reply of an unexpected shape")
    return r


def file_name(cid, meta, ext):
    ev = str(_first(meta or {}, "event", "type", default="event"))
    ev = "".join(c if c.isalnum() or c in "-_" else "_" for c in ev)[:24]
    return "capture-%06d-%s%s" % (cid, ev, ext)


def read(link, cid, progress=None):
    """(meta, bytes) of capture `cid`, read in pieces; the length is the one capture_read
    reports (capture_list's size may count the board's file header too)."""
    buf = bytearray()
    meta = None
    total = None
    while total is None or len(buf) < total:
        # "id" is taken by the frame's request id: the capture is named by capture_id
        r = link.request("capture_read", capture_id=cid, offset=len(buf), length=READ_MAX)
        if not isinstance(r, dict):
            raise CaptureError("capture %d: the board sent a capture_read reply of an unexpected "
                               "shape" % cid)
        meta = r.get("meta") if meta is None else meta
        if total is None:
            total = int(r.get("total") or 0)
        piece = base64.b64decode(r.get("data_b64") or "")
        if not piece and len(buf) < total:
            raise CaptureError("capture %d: the board sent no data at offset %d of %d"
                               % (cid, len(buf), total))
        buf += piece
        if progress:
            progress(len(buf), total)
    if len(buf) != total:
        raise CaptureError("capture %d: got %d bytes, the board announced %d" % (cid, len(buf), total))
    return meta or {}, bytes(buf)


def existing(out_dir, cid, fmt):
    """The file of capture `cid` already in out_dir (any event name), or None."""
    head = "capture-%06d-" % cid
    try:
        for f in sorted(os.listdir(out_dir)):
            if f.startswith(head) and f.endswith("." + fmt):
                return os.path.join(out_dir, f)
    except OSError:
        pass
    return None


def _channels(cid, meta, samples, vpc):
    """A capture of several mains channels (the board interleaves them: ch0, ch1, ... per
    tick) -> ((n, channels) int16, names, volts per count). Channels with their own
    calibration are brought to one scale, the coarsest channel's (|counts| only shrink: no
    overflow; rounding costs less than half that channel's count)."""
    names = [str(x) for x in meta["channels"]]
    k = len(names)
    if samples.size % k:
        raise CaptureError("capture %d: %d samples do not divide into %d channels"
                           % (cid, samples.size, k))
    x = samples.reshape(-1, k)
    vpcs = meta.get("channel_vpc") or [vpc] * k
    if len(vpcs) != k:
        raise CaptureError("capture %d: %d calibrations for %d channels" % (cid, len(vpcs), k))
    vpcs = [float(v) for v in vpcs]
    top = max(vpcs)
    if min(vpcs) != top:
        x = np.rint(x * (np.array(vpcs) / top)).astype(np.int16)
    return x, names, top


def save(out_dir, cid, meta, data, fmt="npz", cfg_mains=None):
    """Write one capture; returns its path."""
    if len(data) % 2:
        raise CaptureError("capture %d: odd byte count %d for int16 samples" % (cid, len(data)))
    p = describe(meta, cfg_mains)
    samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    names, vpc = None, p["volts_per_count"]
    if meta.get("channels"):
        samples, names, vpc = _channels(cid, meta, samples, vpc)
    path = os.path.join(out_dir, file_name(cid, meta, "." + fmt))
    tmp = os.path.join(out_dir, ".part-" + file_name(cid, meta, "." + fmt))
    write_capture(tmp, samples, p["sample_rate"], vpc, p["nominal_v"],
                  p["nominal_hz"], p["start_time"], channel_names=names)
    if fmt == "wav":
        os.replace(os.path.splitext(tmp)[0] + ".json", os.path.splitext(path)[0] + ".json")
    with open(os.path.splitext(path)[0] + ".meta.json", "w", encoding="utf-8") as f:
        json.dump(dict(meta, id=cid, pulled=time.time()), f, indent=1)
    os.replace(tmp, path)  # last: the capture file appears only when everything is written
    return path


def pull(link, out_dir, ids=None, fmt="npz", force=False, progress=None, cfg_mains=None):
    """Pull captures (all, or those in `ids`) into out_dir. Returns [(id, path, status)] with
    status "pulled" or "exists". progress(event, cid, done, total) if given."""
    if fmt not in ("npz", "wav"):
        raise CaptureError("format must be npz or wav")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise CaptureError("cannot create %s: %s" % (out_dir, e.strerror or e))
    caps = list_captures(link)
    if ids:
        known = {c.get("id") for c in caps}
        missing = [i for i in ids if i not in known]
        if missing:
            raise CaptureError("no capture %s on the board (it has %s)" % (
                ", ".join(map(str, missing)), ", ".join(str(c.get("id")) for c in caps) or "none"))
        caps = [c for c in caps if c.get("id") in ids]
    out = []
    for c in caps:
        cid = c["id"]
        path = existing(out_dir, cid, fmt)
        if path and not force:
            out.append((cid, path, "exists"))
            continue
        if progress:
            progress("start", cid, 0, c.get("bytes"))
        meta, data = read(link, cid,
                          (lambda d, t, cid=cid: progress("data", cid, d, t)) if progress else None)
        meta = dict(c.get("meta") or {}, **(meta or {}))
        out.append((cid, save(out_dir, cid, meta, data, fmt, cfg_mains), "pulled"))
    return out
