import pytest

from powersentinel import virtual
from support import REPO, no_leftover, venv_tool  # noqa: F401  (re-exported for old imports)


@pytest.fixture
def vboard(tmp_path):
    """A virtual board with freshly deployed firmware in its own directory; stopped after."""
    d = str(tmp_path / "board")
    meta = virtual.start(d)
    meta["dir"] = d
    try:
        yield meta
    finally:
        virtual.stop(d)

