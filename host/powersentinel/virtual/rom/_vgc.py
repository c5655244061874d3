# MicroPython (virtual board ROM): stands in for `gc` so the firmware's heap figures leave out the
# ROM's own modules. On a board, `machine` and the rest of the hardware layer are C code in flash
# with static state; here they are Python whose objects sit in the GC heap. The launcher enlarges
# the heap by what they take (HEAP_BYTES, measured when it builds the hardware ROM image) and this
# module reports the heap as the firmware would see it on a board: the same total and free bytes.
from gc import *  # noqa: F401,F403  (collect, threshold, enable, ...)
import gc as _gc

HEAP_BYTES = 0  # set by rom.py from the launcher


def mem_alloc():
    return _gc.mem_alloc() - HEAP_BYTES
