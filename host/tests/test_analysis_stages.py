"""Each analysis stage fed directly: cut at awkward places (inside a half cycle, one sample after
an edge, on the sample where an event starts, inside the FIR history, across 10 s and 10 min
clock boundaries, group flags arriving a step late) it gives the same result as one chunk, and
the result is the right one."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from powersentinel.analysis import Synth, dip, kernels, swell
from powersentinel.analysis.errors import AnalysisInputError
from powersentinel.analysis.stages.aggregation import AggregationStage
from powersentinel.analysis.stages.events import EventStage, Thresholds
from powersentinel.analysis.stages.frequency import FrequencyStage
from powersentinel.analysis.stages.grid import FLAG_CLIPPED, FLAG_EVENT, Grid
from powersentinel.analysis.stages.halfcycles import HalfCycleRows, HalfCycleStage
from powersentinel.analysis.stages.harmonics import HarmonicsStage
from powersentinel.analysis.stages.history import SampleHistory

BACKENDS = ["numpy"] + (["cython"] if kernels.cython is not None else [])
FS = 8_000          # 80 samples per half cycle at 50 Hz
VPC = 0.025


def _pieces(n, cuts):
    """(start, stop) of the pieces of range(n) cut at the given sample indices."""
    b = [0] + sorted(c for c in set(cuts) if 0 < c < n) + [n]
    return list(zip(b[:-1], b[1:]))


def _same(a, b, path="result"):
    """Bit-identical, recursively (arrays, dicts, tuples, lists, events, series). An event's
    uid is left out: it numbers the events in the order the stage met them, which within one
    step is by kind; the result's ids come from the sorted events."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (path, a.dtype, b.dtype, a.shape, b.shape)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif hasattr(a, "__dataclass_fields__"):
        for f in set(a.__dataclass_fields__) - {"uid"}:
            _same(getattr(a, f), getattr(b, f), f"{path}.{f}")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, (path, a, b)


def _signal(seconds, events=(), channels=1, f=50.0, **kw):
    return Synth(FS, freq=f, harmonics={3: 0.05, 5: 0.03}, noise_v=0.5, volts_per_count=VPC,
                 channels=channels, events=list(events), seed=4, **kw).generate(seconds)


def _chans(x):
    x = x[:, None] if x.ndim == 1 else x
    return x, [np.ascontiguousarray(x[:, c]) for c in range(x.shape[1])]


def _halfcycle_steps(grid, k, x, cuts):
    """Feed a HalfCycleStage in the pieces; return the stage and each step's (rows, x, n0)."""
    x, _ = _chans(x)
    st = HalfCycleStage(grid, k, x.shape[1], VPC, 10_000)
    steps = []
    for a, b in _pieces(x.shape[0], cuts):
        steps.append((st.feed(_chans(x[a:b])[1], a), x[a:b], a))
    return st, steps


def _cat_rows(steps):
    rows = [r for r, _, _ in steps if r is not None]
    return {f: np.concatenate([getattr(r, f) for r in rows]) for f in HalfCycleRows.__slots__}


# -- half cycles -----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("channels", [1, 3])
def test_halfcycles_any_cut_same_rows(backend, channels):
    k = kernels.get(backend)
    grid = Grid(FS, 50.0, None)
    x = _signal(0.5, [dip(0.2, 0.1, 0.5)], channels)
    if channels == 1:
        x[1000:1003] = 32767  # clipping inside half cycle 12
    n = x.shape[0]
    e = [grid.edge(i) for i in range(1, 30)]
    awkward = [1, 2, e[2] - 1, e[2], e[2] + 1, e[5] + 40, *range(e[8], e[9], 7), 3001, n - 1]
    ref_stage, ref = _halfcycle_steps(grid, k, x, [])
    got_stage, got = _halfcycle_steps(grid, k, x, awkward)
    assert any(r is None for r, _, _ in got)  # some steps completed no half cycle
    _same(_cat_rows(ref), _cat_rows(got))
    w1, w2 = [], []
    _same(ref_stage.finish(w1), got_stage.finish(w2))
    assert w1 == w2
    # and the rows are right: exact sums on the grid, Urms(1/2) over two half cycles
    rows = _cat_rows(ref)
    xc = x.reshape(n, -1).astype(np.int64)
    m = rows["k"].size
    edges = grid.edges(np.arange(m + 1))
    csum = np.concatenate((np.zeros((1, channels), np.int64), np.cumsum(xc * xc, axis=0)))
    np.testing.assert_array_equal(rows["S"], csum[edges[1:]] - csum[edges[:-1]])
    np.testing.assert_array_equal(rows["cnt"], np.diff(edges))
    u = np.sqrt((rows["S"][1:] + rows["S"][:-1]) / (rows["cnt"][1:] + rows["cnt"][:-1])[:, None])
    np.testing.assert_allclose(rows["u"][1:], u * VPC, rtol=1e-12)
    if channels == 1:
        assert list(np.flatnonzero(rows["flags"] & FLAG_CLIPPED)) == [12]
        assert any("clipped in 1 half cycles" in w for w in w1)


def test_halfcycles_refuse_nan():
    st = HalfCycleStage(Grid(FS, 50.0, None), kernels.get("numpy"), 1, 1.0, 100)
    x = np.full(400, 100.0)
    x[250] = np.nan
    st.feed([x[:200]], 0)
    with pytest.raises(AnalysisInputError, match="NaN or infinite samples near t=0.030 s"):
        st.feed([x[200:]], 200)


# -- events ----------------------------------------------------------------------------------
def _rows_of(u, grid, k0=0):
    """Half-cycle rows carrying the given Urms(1/2) values (volts), one channel per column."""
    u = np.asarray(u, np.float64).reshape(len(u), -1)
    k = np.arange(k0, k0 + u.shape[0])
    cnt = np.diff(grid.edges(np.arange(k0, k0 + u.shape[0] + 1)))
    return HalfCycleRows(k, np.zeros(u.shape, np.int64), cnt, u, np.zeros(u.shape[0], np.uint8))


def _event_stage(k, grid, nch=1, **kw):
    opts = dict(refine=False, max_captures=0, pre=0, post=0, f_at=lambda n: 50.0)
    opts.update(kw)
    return EventStage(grid, k, nch, 230.0, VPC, Thresholds(), **opts)


def _feed_events(stage, grid, u, cut_rows):
    """Feed the Urms(1/2) rows u in pieces cut at the given row indices (samples to match)."""
    flags = []
    for a, b in _pieces(len(u), cut_rows):
        rows = _rows_of(u[a:b], grid, a)
        n0, n1 = grid.edge(a), grid.edge(b)
        flags.append(stage.feed(rows, np.zeros((n1 - n0, rows.u.shape[1]), np.int16), n0))
    return np.concatenate(flags)


@pytest.mark.parametrize("backend", BACKENDS)
def test_events_hysteresis_across_every_cut(backend):
    k = kernels.get(backend)
    grid = Grid(FS, 50.0, None)
    # dip below 207 V (90 %) at row 10; 208 V is above the threshold but inside the 2 %
    # hysteresis, so the dip lasts until 212 V at row 20; a swell over 253 V from row 25 that
    # 249 V (inside its hysteresis) prolongs until row 28
    u = [230.0] * 10 + [200.0, 150.0, 208.0, 208.0, 190.0, 208.0] + [208.0] * 4 + [212.0] * 5 \
        + [260.0, 255.0, 249.0] + [230.0] * 6
    ref = _event_stage(k, grid)
    ref_flags = _feed_events(ref, grid, u, [])
    ref_out = ref.finish(len(u), grid.edge(len(u)), [])
    dips = [e for e in ref_out["events"] if e.type == "dip"]
    swells = [e for e in ref_out["events"] if e.type == "swell"]
    assert len(dips) == 1 and len(swells) == 1
    assert dips[0].iec_start_s == grid.edge(9) / FS and dips[0].residual_v == 150.0
    assert dips[0].iec_start_s + dips[0].iec_duration_s == pytest.approx(grid.edge(21) / FS)
    assert swells[0].peak_v == 260.0 and swells[0].k_start == 25 and swells[0].k_end == 28
    np.testing.assert_array_equal(np.flatnonzero(ref_flags), [*range(10, 20), 25, 26, 27])
    for cut in range(1, len(u)):
        stage = _event_stage(k, grid)
        flags = _feed_events(stage, grid, u, [cut, cut + 1, cut + 3])
        np.testing.assert_array_equal(flags, ref_flags)
        _same(stage.finish(len(u), grid.edge(len(u)), [])["events"], ref_out["events"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_events_polyphase_rules_across_cuts(backend):
    k = kernels.get(backend)
    grid = Grid(FS, 50.0, None)
    ok, low = [230.0, 230.0, 230.0], [10.0, 10.0, 10.0]
    # phase 1 dips; then all phases fall below 10 % (an interruption); then two only (a dip)
    u = [ok] * 4 + [[230.0, 100.0, 230.0]] * 3 + [ok] * 3 + [low] * 4 + [ok] * 3 \
        + [[5.0, 230.0, 5.0]] * 3 + [ok] * 3
    outs = []
    for cuts in ([], [5], [11, 12], list(range(1, len(u)))):
        stage = _event_stage(k, grid, 3)
        _feed_events(stage, grid, u, cuts)
        outs.append(stage.finish(len(u), grid.edge(len(u)), [])["events"])
    for out in outs[1:]:
        _same(out, outs[0])
    kinds = [(e.type, e.channels, e.includes_interruption) for e in outs[0]]
    assert kinds == [("dip", [1], False), ("dip", [0, 1, 2], True), ("interruption", [0, 1, 2],
                     False), ("dip", [0, 2], False)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_events_refined_and_captured_across_cuts(backend):
    """Refinement and captures read the waveform from the sample history: a cut on the sample
    where the dip starts, steps shorter than a half cycle, or an event longer than the history
    fed in short steps change nothing."""
    k = kernels.get(backend)
    grid = Grid(FS, 50.0, None)
    synth = Synth(FS, freq=50.7, harmonics={3: 0.05}, noise_v=0.5, volts_per_count=VPC, seed=4,
                  events=[dip(0.3, 0.1, 0.4, onset_deg=90), swell(0.7, 0.04, 1.2),
                          dip(1.2, 0.9, 0.5)])
    x = synth.generate(2.5)
    truth = synth.truth()
    start = int(round(truth[0]["start_s"] * FS))  # the sample where the dip begins
    cuts = [start, start + 1, *range(start + 2, start + 200, 37), grid.edge(40) + 3, 6001,
            *range(8000, 20000, 500)]

    def run(c):
        hc, steps = _halfcycle_steps(grid, k, x, c)
        fr = FrequencyStage(grid, k, 230.0, VPC, 10_000, EventStage.history_length(grid, 800, 3200))
        st = _event_stage(k, grid, refine=True, max_captures=5, pre=800, post=3200, f_at=fr.f_at)
        flags = []
        for r, xs, n0 in steps:
            fr.feed(np.ascontiguousarray(xs[:, 0]))  # the frequency hint, as the Analyzer wires it
            flags.append(st.feed(r, xs, n0))
        out = st.finish(hc.k_open, x.shape[0], [])
        return [f for f in flags if f is not None], out
    ref_flags, ref = run([])
    got_flags, got = run(cuts)
    np.testing.assert_array_equal(np.concatenate(ref_flags), np.concatenate(got_flags))
    _same(ref, got)
    d, s, long = ref["events"]
    assert [e.type for e in ref["events"]] == ["dip", "swell", "dip"]
    assert d.refined and s.refined and long.refined
    assert abs(d.start_s - truth[0]["start_s"]) < 1e-3
    assert abs(d.duration_s - truth[0]["duration_s"]) < 1e-3
    # the capture spans the event and `pre` samples each side, in volts
    t0, v = ref["captures"][0]["event"]
    a0 = int(round(t0 * FS))
    assert a0 == grid.edge(d.k_start - 1) - 800
    assert a0 + v.shape[0] == grid.edge(d.k_end + 1) + 800
    np.testing.assert_array_equal(v[:, 0], x[a0:a0 + v.shape[0]] * VPC)
    # a long one: `pre` + `post` samples around its start and around its end
    for name, edge in (("start", grid.edge(long.k_start - 1) - 800),
                       ("end", grid.edge(long.k_end + 1) - 3200)):
        t0, v = ref["captures"][2][name]
        assert round(t0 * FS) == edge and v.shape[0] == 4000
        np.testing.assert_array_equal(v[:, 0], x[edge:edge + 4000] * VPC)


# -- frequency -------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_frequency_any_cut_same_values(backend):
    k = kernels.get(backend)
    grid = Grid(FS, 50.0, 1_700_000_395.0)  # 10 s clock boundaries at 5 s and 15 s
    x = _signal(12.0, f=50.13)
    D = FrequencyStage(grid, k, 230.0, VPC, 10_000, 4000).D
    cuts = [1, D - 1, D, D + 1, 2 * D + 3, 5 * D, 5 * D + 1, 40_000, 40_001, 40_000 + D - 1,
            *range(60_000, 61_000, 13), x.shape[0] - 2]

    def run(c):
        """The result, and f_at() asked from 4000 samples back to 1.5 cycles before the end of
        the samples fed, after each piece."""
        st = FrequencyStage(grid, k, 230.0, VPC, 10_000, 4000)
        hints = {}
        for a, b in _pieces(x.shape[0], c):
            st.feed(x[a:b])
            for n in range(max(b - 4000, 0), b - 240, 97):
                hints.setdefault(n, st.f_at(n))
        return st.finish([], np.full(10, 230.0), []), hints
    ref, ref_hints = run([])
    got, hints = run(cuts)
    _same(ref, got)
    full = FrequencyStage(grid, k, 230.0, VPC, 10_000, 10**9)  # forgets nothing
    full.feed(x)
    assert all(f == full.f_at(n) for n, f in {**ref_hints, **hints}.items())
    assert len(hints) > 900 and len(set(hints.values())) > 10
    t10, f10, n10, fl = ref["freq10s"]
    # the clock windows [390, 400) and [400, 410) s, each holding the cycles recorded in it
    assert t10.tolist() == [-5.0, 5.0] and fl.tolist() == [0, 0]
    assert np.all(np.abs(f10 - 50.13) < 0.002)
    assert abs(n10[0] - 5 * 50.13) < 2 and abs(n10[1] - 7 * 50.13) < 2
    assert np.all(np.abs(ref["freq_cycles"][1] - 50.13) < 0.02)


def test_frequency_flags_and_refuses_wrong_rate():
    k = kernels.get("numpy")
    grid = Grid(FS, 50.0, None)
    st = FrequencyStage(grid, k, 230.0, VPC, 10_000, 4000)
    st.feed(_signal(2.0))
    ev = SimpleNamespace(iec_start_s=1.0, iec_duration_s=0.1)  # the fields the stage reads
    out = st.finish([ev], np.full(10, 230.0), [])
    t, _ = out["freq_cycles"]
    # a cycle ending at t spans about [t - 1/f, t]: flagged if that (with margin) meets the event
    flagged = t[out["freq_cycles_flags"] == FLAG_EVENT]
    np.testing.assert_array_equal(flagged, t[(t > 1.0) & (t - 1.5 / 50 < 1.1)])
    assert flagged.size == 6
    # recorded at 8 kHz, declared as 12 kHz: 50 Hz reads as 75 Hz
    wrong = FrequencyStage(Grid(12_000, 50.0, None), k, 230.0, VPC, 10_000, 4000)
    with pytest.raises(AnalysisInputError, match=r"frequency 75\.0\d Hz is far from the nominal"):
        wrong.feed(_signal(2.0))
    silent = FrequencyStage(grid, k, 230.0, VPC, 10_000, 4000)
    silent.feed(np.zeros(8000, np.int16))
    w = []
    silent.finish([], np.zeros(10), w)
    assert w == ["no mains cycles found: frequency not measured"]


# -- aggregation -----------------------------------------------------------------------------
def _agg_rows(grid, m, rng):
    k = np.arange(m)
    cnt = np.diff(grid.edges(np.arange(m + 1)))
    S = rng.integers(10**9, 2 * 10**9, size=(m, 2)).astype(np.int64)
    u = rng.uniform(200.0, 240.0, size=(m, 2))
    flags = np.zeros(m, np.uint8)
    flags[[33, 3000]] = FLAG_EVENT
    flags[1234] = FLAG_CLIPPED
    return k, S, cnt, u, flags


@pytest.mark.parametrize("backend", BACKENDS)
def test_aggregation_any_cut_same_series(backend):
    k = kernels.get(backend)
    grid = Grid(FS, 50.0, 1_700_000_399.0)  # a 10 min boundary 1 s in, (at half cycle 100)
    rows = _agg_rows(grid, 3100, np.random.default_rng(1))  # 31 s: two 150-cycle values and more

    def run(c):
        st = AggregationStage(grid, k, 2, VPC, True, 10_000)
        groups = []
        for a, b in _pieces(3100, c):
            groups += st.feed(*(r[a:b] for r in rows))
        return groups, st.finish()
    ref_groups, ref = run([])
    for cuts in ([1, 19, 20, 21, 99, 100, 101, 299, 300, 301, 1500, 3099], list(range(7, 3100, 7))):
        groups, out = run(cuts)
        assert groups == ref_groups
        _same(out, ref)
    a10, a150, a10min = ref["agg10"], ref["agg150"], ref["agg10min"]
    K, S, cnt, u, flags = rows
    assert a10.t.size == 155 and a150.t.size == 11 and a10min.t.size == 2
    np.testing.assert_allclose(a10.rms[3], np.sqrt(S[60:80].sum(0) / cnt[60:80].sum()) * VPC,
                               rtol=1e-13)
    assert a10.min[1].tolist() == u[20:40].min(0).tolist()
    assert a10.flags[1] == FLAG_EVENT and a10.flags[61] == FLAG_CLIPPED and a10.flags[0] == 0
    assert ref_groups[1] == (1, FLAG_EVENT) and len(ref_groups) == 155
    assert a10min.t.tolist() == [0.0, 1.0]  # the first interval ends at the clock's 10 min
    assert a150.flags[0] == FLAG_EVENT and a150.flags[10] == FLAG_EVENT


# -- harmonics -------------------------------------------------------------------------------
def test_harmonics_any_cut_same_values():
    grid = Grid(FS, 50.0, None)
    x, _ = _chans(_signal(2.0))
    G = grid.G
    n_groups = x.shape[0] // grid.edge(G)
    flags = {g: (FLAG_EVENT if g == 3 else 0) for g in range(n_groups)}

    def run(cuts, lag):
        """Group flags arrive `lag` steps after the step that completed the group."""
        st = HarmonicsStage(grid, 1, VPC, 10_000)
        queue, nxt = [], 0
        for a, b in _pieces(x.shape[0], cuts):
            done = []
            while nxt < n_groups and grid.edge((nxt + 1) * G) <= b:
                done.append((nxt, flags[nxt]))
                nxt += 1
            queue.append(done)
            st.feed(x[a:b], b, queue.pop(0) if len(queue) > lag else [])
        return st.finish()["harmonics"]
    ref = run([], 0)
    assert ref["windows"] == n_groups - 1  # the flagged window is left out
    assert math.isnan(ref["thd_pct"][3, 0]) and not np.isnan(ref["thd_pct"][4, 0])
    mv = ref["mean_v"][0]
    assert abs(mv[3] / mv[1] - 0.05) < 0.001 and abs(mv[5] / mv[1] - 0.03) < 0.001
    edge = grid.edge(G)
    for cuts, lag in (([1, edge - 1, edge + 1, 2 * edge, 5000, 9999], 1),
                      (list(range(333, x.shape[0], 333)), 2)):
        _same(run(cuts, lag), ref)


# -- the sample history the event stage reads -----------------------------------------------
def test_sample_history_serves_across_feeds():
    h = SampleHistory(1, 10)
    x = np.arange(40, dtype=np.int16)[:, None]
    got = {}

    def keep(name):
        return lambda a0, data: got.setdefault(name, (a0, data[:, 0].tolist()))
    h.feed(x[:12], 0)                 # keeps samples 2..11
    h.request(0, 20, keep("partly gone"))
    h.request(8, 9, keep("held"))
    h.request(0, 2, keep("gone"))
    h.request(30, 50, keep("past the end"))
    h.feed(x[12:13], 12)
    assert got["held"] == (8, [8]) and got["gone"] == (2, [])
    assert "partly gone" not in got
    h.feed(x[13:37], 13)
    assert got["partly gone"] == (2, list(range(2, 20)))  # from where the history begins
    h.finish(37)
    assert got["past the end"] == (30, list(range(30, 37)))
