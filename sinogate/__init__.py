"""sinogate: a self-hosted telematics gateway for H02 (Sinotrack) and JT/T 808 trackers."""

from sinogate import _native

_native.install()  # before any other module: stale or unwanted compiled modules load as Python

__version__ = "0.1.0"
