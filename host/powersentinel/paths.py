"""Where the firmware sources are: inside the installed package, or the checkout beside it."""
import importlib.util
import os
import sys


def firmware_dir() -> str:
    spec = importlib.util.find_spec("powersentinel._firmware")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if os.path.isfile(os.path.join(loc, "main.py")):
                return loc
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", "..", "firmware"))
    if os.path.isfile(os.path.join(repo, "main.py")):
        return repo
    raise RuntimeError("firmware sources not found (reinstall powersentinel)")


def use_firmware_lib() -> None:
    """Make the firmware's pure modules (`sentinel.*`) importable on the host, so host tools and
    simulators share one definition of formats with the device (never the other way round)."""
    lib = os.path.join(firmware_dir(), "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)
