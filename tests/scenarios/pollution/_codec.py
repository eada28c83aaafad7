"""Process-global state: once a test configures the codec, every later test in the process sees it."""

CODEC = None
