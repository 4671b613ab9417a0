"""faultlab: an executable model of the Linux page-fault path for file-backed mappings."""

__version__ = "0.1.0"
