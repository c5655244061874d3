"""Power Sentinel host tools: deploy, configure, monitor, analyse, and the virtual board."""
from .paths import use_firmware_lib

use_firmware_lib()
# the version is written once, in the firmware (pyproject.toml reads it from there too)
from sentinel.version import VERSION as __version__  # noqa: E402

__all__ = ["__version__"]
