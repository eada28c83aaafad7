"""forensics: crash forensics for Python test suites and worker pools."""

__version__ = "0.1.0"
