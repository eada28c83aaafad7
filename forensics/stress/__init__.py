"""Re-run a pytest command many times at several xdist levels, each run under ``wrap``.

``argv`` sets the level in the user's command, ``runner`` runs one supervised iteration and
reads its triage, ``history`` keeps every iteration in SQLite so later runs add up, and
``render`` draws the per-level table.
"""
