"""Recordings in: WAV, NumPy (.npy/.npz), CSV, and the device capture format.

Device capture format (what `powersentinel captures pull` writes), version 1, either
- NAME.npz with an array `samples` (int16, shape (n,) or (n, channels)) and scalar entries
  `sample_rate`, `volts_per_count`, `nominal_v`, `nominal_hz`, `start_time`; or
- NAME.wav (16-bit PCM) plus a JSON sidecar NAME.json (or NAME.wav.json) holding
  {"format": "powersentinel.capture/1", "sample_rate": 4000, "volts_per_count": 0.02,
   "nominal_v": 230.0, "nominal_hz": 50, "start_time": "2025-01-31T12:00:00Z"}.
With several channels (a three-phase or two-feed board), the npz holds `channel_names` (a
string array such as ["L1", "L2", "L3"] or ["A", "B"]) and the JSON sidecar a
"channel_names" list; the analysis labels its figures with them (L1, L2, ... without).
start_time is ISO 8601 (UTC if no offset) or seconds since the Unix epoch. A sidecar may also
accompany .npy and .csv files. Options given by the caller override file metadata; a sample
rate that disagrees between sources is an error (never silently picked).

WAV and .npy are memory-mapped, so a week of samples is read in chunks without loading it.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

import numpy as np

from .errors import AnalysisInputError

KEYS = ("sample_rate", "volts_per_count", "nominal_v", "nominal_hz", "start_time")


@dataclass
class Recording:
    path: str
    data: np.ndarray                 # (n, channels), possibly memory-mapped
    sample_rate: float
    volts_per_count: float
    nominal_v: float
    nominal_hz: float
    start_time: float | None         # seconds since the Unix epoch (UTC)
    warnings: list[str] = field(default_factory=list)
    fmt: str = ""
    channel_names: list[str] | None = None   # e.g. ["L1", "L2", "L3"] or ["A", "B"]

    @property
    def channels(self) -> int:
        return self.data.shape[1]

    @property
    def n_samples(self) -> int:
        return self.data.shape[0]

    def chunks(self, size: int = 1 << 20) -> Iterator[np.ndarray]:
        for s in range(0, self.n_samples, size):
            yield np.asarray(self.data[s:s + size])


def parse_time(v) -> float | None:
    """ISO 8601 string or epoch seconds -> epoch seconds (None stays None)."""
    if v is None:
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            raise AnalysisInputError(f"invalid start_time {v!r}")
        return f
    s = str(v).strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise AnalysisInputError(f"invalid start_time {v!r} (ISO 8601 or epoch seconds)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _sidecar(path: str) -> dict:
    base, _ = os.path.splitext(path)
    for cand in (path + ".json", base + ".json"):
        if cand != path and os.path.isfile(cand):
            try:
                with open(cand, encoding="utf-8") as f:
                    meta = json.load(f)
            except (OSError, ValueError) as e:
                raise AnalysisInputError(f"unreadable sidecar {cand}: {e}") from None
            if not isinstance(meta, dict):
                raise AnalysisInputError(f"sidecar {cand} must hold a JSON object")
            out = {k: meta[k] for k in KEYS if meta.get(k) is not None}
            names = meta.get("channel_names")
            if isinstance(names, list) and all(isinstance(x, str) for x in names):
                out["channel_names"] = names
            return out
    return {}


def _merge_rate(sources: list[tuple[str, float | None]]) -> float | None:
    rate = None
    first = None
    for name, v in sources:
        if v is None:
            continue
        v = float(v)
        if not (v > 0 and math.isfinite(v)):
            raise AnalysisInputError(f"invalid sample rate {v!r} from {name}")
        if rate is None:
            rate, first = v, name
        elif abs(v - rate) > 1e-9 * rate:
            raise AnalysisInputError(
                f"sample rate mismatch: {first} says {rate:g} Hz, {name} says {v:g} Hz")
    return rate


def read_wav(path: str):
    """(data (n, ch) memmap, sample_rate, warnings). 16-bit PCM or 32-bit float."""
    size = os.path.getsize(path)
    if size == 0:
        raise AnalysisInputError("empty file")
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise AnalysisInputError("not a RIFF/WAVE file")
        fmt = None
        pos = 12
        while True:
            f.seek(pos)
            ch = f.read(8)
            if len(ch) < 8:
                raise AnalysisInputError("truncated WAV: no data chunk")
            cid, clen = ch[:4], struct.unpack("<I", ch[4:])[0]
            if cid == b"fmt ":
                body = f.read(clen)
                if len(body) < 16:
                    raise AnalysisInputError("truncated WAV: short fmt chunk")
                tag, nch, rate, _, align, bits = struct.unpack("<HHIIHH", body[:16])
                if tag == 0xFFFE and len(body) >= 26:
                    tag = struct.unpack("<H", body[24:26])[0]
                fmt = (tag, nch, rate, align, bits)
            elif cid == b"data":
                if fmt is None:
                    raise AnalysisInputError("WAV data chunk before its fmt chunk")
                off = pos + 8
                break
            pos += 8 + clen + (clen & 1)
    tag, nch, rate, align, bits = fmt
    if tag == 1 and bits == 16:
        dt = np.dtype("<i2")
    elif tag == 3 and bits == 32:
        dt = np.dtype("<f4")
    else:
        raise AnalysisInputError(f"unsupported WAV sample format (tag {tag}, {bits} bits): "
                                 "use 16-bit PCM or 32-bit float")
    if nch < 1 or align != nch * dt.itemsize:
        raise AnalysisInputError("inconsistent WAV fmt chunk")
    warnings = []
    avail = size - off
    frames = min(clen, avail) // align
    if clen > avail:
        warnings.append(f"truncated WAV: header announces {clen // align} frames, file holds "
                        f"{frames}; analysed those")
    if frames == 0:
        raise AnalysisInputError("WAV holds no samples" + (" (truncated)" if clen > avail else ""))
    data = np.memmap(path, dtype=dt, mode="r", offset=off, shape=(frames, nch))
    return data, float(rate), warnings


def read_csv(path: str):
    """(data (n, ch) float64, sample rate from a time column or None)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    if not first.strip():
        raise AnalysisInputError("empty file")
    delim = "," if "," in first else (";" if ";" in first else None)
    header = any(c.isalpha() for c in first.replace("nan", "").replace("NaN", "").replace("e", ""))
    names = [c.strip().lower() for c in first.split(delim)] if header else []
    try:
        arr = np.loadtxt(path, delimiter=delim, skiprows=1 if header else 0, ndmin=2,
                         dtype=np.float64)
    except ValueError as e:
        raise AnalysisInputError(f"unreadable CSV: {e}") from None
    if arr.size == 0:
        raise AnalysisInputError("CSV holds no samples")
    rate = None
    if names and names[0] in ("t", "time", "time_s", "seconds", "s"):
        t = arr[:, 0]
        arr = arr[:, 1:]
        if t.shape[0] >= 2:
            dt = np.diff(t)
            step = float(np.median(dt))
            if not step > 0 or np.max(np.abs(dt - step)) > 0.01 * step:
                raise AnalysisInputError("CSV time column is not uniformly sampled")
            rate = 1.0 / step
        if arr.shape[1] == 0:
            raise AnalysisInputError("CSV has a time column but no samples")
    return arr, rate


def open_recording(path: str, sample_rate: float | None = None,
                   volts_per_count: float | None = None, nominal_v: float | None = None,
                   nominal_hz: float | None = None, start_time=None) -> Recording:
    """Open a recording; options override file metadata. Raises AnalysisInputError."""
    if not os.path.isfile(path):
        raise AnalysisInputError("no such file")
    ext = os.path.splitext(path)[1].lower()
    meta: dict = {}
    warnings: list[str] = []
    header_rate = None
    if ext == ".wav":
        data, header_rate, warnings = read_wav(path)
        fmt = "wav"
    elif ext == ".npy":
        if os.path.getsize(path) == 0:
            raise AnalysisInputError("empty file")
        try:
            data = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise AnalysisInputError(f"unreadable .npy: {e}") from None
        fmt = "npy"
    elif ext == ".npz":
        if os.path.getsize(path) == 0:
            raise AnalysisInputError("empty file")
        try:
            z = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise AnalysisInputError(f"unreadable .npz: {e}") from None
        with z:
            arrays = [k for k in z.files if k not in KEYS and k != "channel_names"]
            key = next((k for k in ("samples", "x", "data", "v") if k in z.files), None)
            if key is None:
                if len(arrays) != 1:
                    raise AnalysisInputError(".npz needs an array named 'samples'")
                key = arrays[0]
            data = z[key]
            for k in KEYS:
                if k in z.files:
                    v = z[k]
                    meta[k] = v.item() if v.shape == () else v
            if "channel_names" in z.files and z["channel_names"].dtype.kind == "U":
                meta["channel_names"] = [str(x) for x in z["channel_names"].ravel()]
        fmt = "npz"
    elif ext in (".csv", ".txt"):
        data, header_rate = read_csv(path)
        fmt = "csv"
    else:
        raise AnalysisInputError(f"unknown file type {ext!r} (.wav, .npy, .npz, .csv)")
    side = _sidecar(path)
    data = np.asarray(data) if not isinstance(data, np.memmap) else data
    if data.ndim == 1:
        data = data[:, None]
    elif data.ndim == 2:
        if data.shape[0] <= 8 < data.shape[1]:
            data = data.T  # channels first: (ch, n)
    else:
        raise AnalysisInputError(f"samples must be 1-D or 2-D, got shape {data.shape}")
    if data.shape[0] == 0:
        raise AnalysisInputError("no samples")
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise AnalysisInputError(f"unsupported sample type {data.dtype}")
    rate = _merge_rate([("the option", sample_rate), ("the file header", header_rate),
                        ("the file metadata", meta.get("sample_rate")),
                        ("the sidecar", side.get("sample_rate"))])
    if rate is None:
        raise AnalysisInputError("sample rate unknown: give --sample-rate or a JSON sidecar")

    def pick(name, opt, default=None):
        for v in (opt, meta.get(name), side.get(name)):
            if v is not None:
                return v
        return default
    vpc = pick("volts_per_count", volts_per_count)
    if vpc is None:
        if np.issubdtype(data.dtype, np.integer):
            raise AnalysisInputError("integer samples need a calibration: give --volts-per-count "
                                     "or a JSON sidecar with volts_per_count")
        vpc = 1.0  # float samples are taken as volts
    vpc = float(vpc)
    if not (vpc > 0 and math.isfinite(vpc)):
        raise AnalysisInputError(f"invalid volts_per_count {vpc!r}")
    nv = float(pick("nominal_v", nominal_v, 230.0))
    nf = float(pick("nominal_hz", nominal_hz, 50.0))
    st = parse_time(pick("start_time", start_time))
    names = pick("channel_names", None)
    if names is not None and len(names) != data.shape[1]:
        warnings.append(f"{len(names)} channel names for {data.shape[1]} channels: ignored")
        names = None
    return Recording(path=path, data=data, sample_rate=rate, volts_per_count=vpc, nominal_v=nv,
                     nominal_hz=nf, start_time=st, warnings=warnings, fmt=fmt,
                     channel_names=names)


def write_capture(path: str, samples: np.ndarray, sample_rate: float, volts_per_count: float,
                  nominal_v: float = 230.0, nominal_hz: float = 50.0, start_time=None,
                  channel_names: list[str] | None = None) -> None:
    """Write the device capture format: NAME.npz, or NAME.wav + NAME.json (int16 samples,
    (n,) or (n, channels); channel_names labels the channels)."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        raise ValueError("capture samples must be int16 counts")
    st = parse_time(start_time)
    meta = {"format": "powersentinel.capture/1", "sample_rate": sample_rate,
            "volts_per_count": volts_per_count, "nominal_v": nominal_v, "nominal_hz": nominal_hz,
            "start_time": None if st is None else
            datetime.fromtimestamp(st, timezone.utc).isoformat().replace("+00:00", "Z")}
    if channel_names:
        meta["channel_names"] = list(channel_names)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        extra = {k: v for k, v in meta.items() if k != "format" and v is not None}
        if channel_names:
            extra["channel_names"] = np.array(channel_names)
        np.savez(path, samples=samples, **extra)
    elif ext == ".wav":
        x = samples if samples.ndim == 2 else samples[:, None]
        nch = x.shape[1]
        raw = np.ascontiguousarray(x, "<i2").tobytes()
        with open(path, "wb") as f:
            f.write(b"RIFF" + struct.pack("<I", 36 + len(raw)) + b"WAVE")
            f.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, nch, int(round(sample_rate)),
                                          int(round(sample_rate)) * 2 * nch, 2 * nch, 16))
            f.write(b"data" + struct.pack("<I", len(raw)) + raw)
        with open(os.path.splitext(path)[0] + ".json", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
    else:
        raise ValueError("capture path must end in .npz or .wav")
