"""deploy.build: modules bound for the heap (a board without ROMFS) are compiled without line
numbers, which is all -O3 changes in this firmware (it has no assert); modules bound for ROMFS
keep them."""
import ast
import os

from powersentinel import deploy
from powersentinel.paths import firmware_dir


def _sizes(built):
    return {dest: os.path.getsize(local) for dest, local, _ in built if dest.endswith(".mpy")}


def test_heap_bound_modules_are_smaller_and_romfs_ones_keep_line_numbers(tmp_path):
    rom = _sizes(deploy.build("armv6m", str(tmp_path / "rom")))
    heap = _sizes(deploy.build("armv6m", str(tmp_path / "heap"), in_heap=True))
    assert rom.keys() == heap.keys()
    assert all(heap[d] <= rom[d] for d in rom)
    assert sum(heap.values()) < 0.97 * sum(rom.values())
    with open(str(tmp_path / "rom") + "/lib/sentinel/app.mpy", "rb") as f:
        assert b"app.py" in f.read()  # the source name, for tracebacks with lines


def test_the_firmware_has_no_assert_for_O3_to_strip():
    lib = os.path.join(firmware_dir(), "lib")
    found = []
    for dirpath, _, files in os.walk(lib):
        for fn in files:
            if fn.endswith(".py"):
                path = os.path.join(dirpath, fn)
                with open(path) as f:
                    tree = ast.parse(f.read())
                found += ["%s:%d" % (path, n.lineno) for n in ast.walk(tree)
                          if isinstance(n, ast.Assert)
                          or (isinstance(n, ast.Name) and n.id == "__debug__")]
    assert found == []
