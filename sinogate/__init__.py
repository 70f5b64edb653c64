"""sinogate: a self-hosted telematics gateway for H02 (Sinotrack) and JT/T 808 trackers."""

__version__ = "0.1.0"
