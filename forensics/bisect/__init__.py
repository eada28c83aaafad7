"""Find the earlier tests that make a test fail or crash when they run before it in one process.

``target`` reads the victim and the tests before it from a bundle, ``trial`` runs one pytest
process and says whether the failure came back, ``search`` shrinks the earlier tests (delta
debugging) and ``render`` draws the result.
"""
