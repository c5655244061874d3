# Mains monitor cost on MicroPython: plain bytecode kernel vs viper kernel, in one process.
# Run under MicroPython from the repo root:
#   .venv/bin/micropython benchmarks/fw_mains_bench.py [SECONDS] [--out FILE] [--decision]
# Feeds SECONDS (default 10) of a noisy 50 Hz signal (1 % noise, 5 % h3/h5, 3 % h7, DC offset,
# with a dip, a swell and an interruption every second so every path runs) at 4 kHz in blocks
# of 16 (the default config), and reports per configuration:
#   - feed(): time per second of signal = the CPU share needed at 4 kHz on this machine;
#   - the bare kernel over whole blocks (no per-block Python): the viper/bytecode ratio;
#   - feed() + Capture.feed() as the sampler task runs them.
# Prints a markdown table (and writes it to FILE with --out). Best of 3 runs per figure.
# --decision adds the loss decision time per residual depth (not a timing: sample counts):
# worst over onset phases 0..355 degrees in 5-degree steps, the onset at every position within
# a block, with the same noise and harmonics; the decision is the end of the block in which
# "lost" became true.
import gc
import sys
import time

sys.path.insert(0, "firmware/lib")
sys.path.insert(0, "firmware/tests")
from siggen import Gen, blocks, mains_cfg  # noqa: E402

from sentinel import mains  # noqa: E402
from sentinel.capture import Capture  # noqa: E402
from sentinel.mains import MainsMonitor  # noqa: E402

RATE = 4000
BL = 16
CFG = mains_cfg(nominal_hz=50, sample_rate=RATE, block_len=BL, capture_pre_ms=100,
                capture_post_ms=400)
NOISY = {"noise": 0.01, "harm": ((3, 0.05), (5, 0.05), (7, 0.03))}
DEPTHS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.46, 0.47, 0.48, 0.49)


def signal():
    # one second = 200 whole cycles, so repeating it is phase-continuous
    env = ((1000, 0.6), (1400, 1.0), (2000, 1.2), (2300, 1.0), (3000, 0.0), (3200, 1.0))
    return Gen(f=50.0, dc=250, noise=0.01, harm=((3, 0.05), (5, 0.05), (7, 0.03)),
               env=env).make(RATE)


def best(fn, reps=3):
    t = None
    for _ in range(reps):
        gc.collect()
        us = fn()
        if t is None or us < t:
            t = us
    return t


def time_feed(bl, seconds, fast, with_capture=False):
    m = MainsMonitor(CFG, fast=fast)
    cap = Capture(CFG) if with_capture else None
    for b in bl:                 # warm-up second (DC seed, frequency, first events)
        m.feed(b)
    feed = m.feed
    t0 = time.ticks_us()
    for _ in range(seconds):
        if cap is None:
            for b in bl:
                feed(b)
        else:
            for b in bl:
                feed(b)
                cap.feed(b, m)
                if cap.pending():
                    cap.release()
        while m.pending():
            m.pop_event()
    return time.ticks_diff(time.ticks_us(), t0)


def time_kernel(a, seconds, kern):
    # the kernel alone, block by block, with the monitor's state vector; flags are cleared
    # and the kernel resumed exactly as feed() does, without the per-flag Python work
    m = MainsMonitor(CFG)
    st = m._st
    for b in blocks(a, BL):
        m.feed(b)
    bl = blocks(a, BL)
    t0 = time.ticks_us()
    for _ in range(seconds):
        for b in bl:
            i = 0
            while i < BL:
                i = kern(b, i, BL, st)
                st[12] = 0
    return time.ticks_diff(time.ticks_us(), t0)


def decision(hz, depth):
    """Worst loss decision time (samples after the onset) at this residual depth."""
    worst = 0
    k = 0
    for phase in range(0, 360, 5):
        on = 1200 + (k * 5) % BL
        k += 1
        g = Gen(f=hz, phase0_deg=phase, phase_at=on, env=((on, depth),), **NOISY)
        m = MainsMonitor(mains_cfg(nominal_hz=hz, sample_rate=RATE, block_len=BL))
        t = 0
        dec = None
        for b in blocks(g.make(on + 30 * RATE // 1000), BL):
            m.feed(b)
            t += BL
            if m.lost:
                dec = t
                break
        if dec is None:
            raise SystemExit("not decided: %r Hz, residual %r, phase %r" % (hz, depth, phase))
        worst = max(worst, dec - on)
    return worst


def decision_table():
    lines = ["", "| residual (% of nominal) | worst decision at 50 Hz (ms) | at 60 Hz (ms) |",
             "|---:|---:|---:|"]
    for depth in DEPTHS:
        w = [decision(hz, depth) * 1000.0 / RATE for hz in (50, 60)]
        lines.append("| %d | %.2f | %.2f |" % (round(depth * 100), w[0], w[1]))
    return lines


def main(argv):
    seconds = 10
    out = None
    dec = False
    k = 0
    while k < len(argv):
        if argv[k] == "--out":
            out = argv[k + 1]
            k += 1
        elif argv[k] == "--decision":
            dec = True
        else:
            seconds = int(argv[k])
        k += 1
    a = signal()
    bl = blocks(a, BL)
    has_fast = mains._kern_fast is not None
    rows = []
    res = {}
    for label, fast in (("plain bytecode", False), ("viper", True)):
        if fast and not has_fast:
            continue
        kern = mains._kern_fast if fast else mains._kern_plain
        f = best(lambda: time_feed(bl, seconds, fast))
        kt = best(lambda: time_kernel(a, seconds, kern))
        c = best(lambda: time_feed(bl, seconds, fast, True))
        res[label] = (f, kt, c)
        rows.append("| %s | %.2f | %.2f %% | %.2f | %.3f %% | %.2f %% |" % (
            label, f / seconds / (RATE / BL), 100.0 * f / (seconds * 1e6),
            kt / seconds / (RATE / BL), 100.0 * kt / (seconds * 1e6), 100.0 * c / (seconds * 1e6)))
    lines = ["| kernel | feed() us/block | feed() CPU at 4 kHz | bare kernel us/block | "
             "bare kernel CPU | feed() + capture CPU |", "|---|---:|---:|---:|---:|---:|"]
    lines += rows
    if has_fast:
        p = res["plain bytecode"]
        v = res["viper"]
        lines.append("")
        lines.append("viper speed-up: feed() x%.1f, bare kernel x%.1f, feed() + capture x%.1f "
                     "(%d s of signal, block_len %d, %s %s)" % (
                         p[0] / v[0], p[1] / v[1], p[2] / v[2], seconds, BL,
                         sys.implementation.name, sys.platform))
    if dec:
        lines += decision_table()
    text = "\n".join(lines)
    print(text)
    if out:
        with open(out, "w") as fh:
            fh.write(text + "\n")


main(sys.argv[1:])
