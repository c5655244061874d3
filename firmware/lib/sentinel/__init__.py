# Power Sentinel firmware. Pure logic lives in this package; board I/O comes in through `hal`.
