# The sampler task: ADC blocks -> mains monitor (+ waveform captures), with hooks for the
# rest of the firmware. One await per block; everything else is synchronous and bounded.
#
#   adc_source  HAL AdcSource: start(); async read() -> memoryview of block_len int16 samples
#               (valid until the next read); overruns (blocks lost). A read() returning None
#               ends the task (replays, tests).
#   monitor     sentinel.mains.MainsMonitor
#   capture     sentinel.capture.Capture or None
#   on_block(monitor)            after every block (cheap: called 250 times/s at 4 kHz)
#   progress()                   after every block: the supervisor's proof of life
#   on_change(monitor)           when monitor.lost or monitor.good changed in this block
#   on_event(event_dict)         for every finished event (monitor.pop_event())
#   on_capture(meta, data)       for every finished waveform capture: data is a memoryview of
#                                the capture's int16 little-endian bytes, valid only during the
#                                call (no 4 KB copy on the heap); copy it to keep it


async def run(adc_source, monitor, capture=None, on_block=None, progress=None, on_change=None,
              on_event=None, on_capture=None):
    adc_source.start()
    over = getattr(adc_source, "overruns", 0)
    lost = monitor.lost
    good = monitor.good
    while True:
        block = await adc_source.read()
        if block is None:
            return
        o = adc_source.overruns
        if o != over:
            # blocks were dropped: keep the sample clock true and resynchronise the analysis
            monitor.skip((o - over) * len(block))
            over = o
        monitor.feed(block)
        if capture is not None:
            capture.feed(block, monitor)
        if monitor.lost != lost or monitor.good != good:
            lost = monitor.lost
            good = monitor.good
            if on_change is not None:
                on_change(monitor)
        if on_block is not None:
            on_block(monitor)
        if progress is not None:
            progress()
        if monitor.pending():
            ev = monitor.pop_event()
            if on_event is not None:
                on_event(ev)
        if capture is not None and capture.pending():
            c = capture.peek()
            try:
                if on_capture is not None:
                    on_capture(c[0], c[1])
            finally:
                capture.release()
