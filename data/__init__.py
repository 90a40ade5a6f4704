"""Synthetic default data per family, and readers for real files."""


class DataError(ValueError):
    """Bad data; the message starts with the file it concerns."""
