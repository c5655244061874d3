"""Power Sentinel host tools: deploy, configure, monitor, analyse, and the virtual board."""

__version__ = "0.1.0"
