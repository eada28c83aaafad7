"""A process-global "runtime", like seed 001's Tokio OnceCell: set once, outlives the test."""

RUNTIME = None
