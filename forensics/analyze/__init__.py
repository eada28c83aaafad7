"""Evidence into incidents: ``report`` (a bundle) and ``analyze`` (raw CI logs, JUnit XML).

One flow for both sources (DESIGN.md: sources -> events -> correlate -> classify -> incidents):

sources      a bundle: ``bundle_source`` (journals, events, fault files, system facts), and its
             ``output.log`` through the log scanner (``console``, ``output_faults``);
             a log: ``logs/reader`` (bytes, decorations, the trigger prefilter) into the line
             scanner ``logs/scan/`` (a table of rules sends each line to the reader of its
             kind: sections, faults, workers, kill lines, last words, ...), ``logs/junit`` for
             JUnit XML.
events       ``events`` (a failed test, an INTERNALERROR: the same records from either source),
             ``logs/findings`` (the rest of what a log shows), ``differential.DeathFacts`` (what
             a source knows about one death).
correlate    which death, test and worker belong together: ``triage`` with ``ownership``,
             ``owned_deaths``, ``hangs``, ``signals``, ``memory_facts`` for a bundle;
             ``logs/correlate`` with ``logs/crashes``, ``logs/kills``, ``logs/hang_incidents``,
             ``logs/native_aborts`` for a log.
classify     one rule set for both: ``differential`` decides a death's cause from its facts,
             ``classify`` a reported failure's or INTERNALERROR's, ``native`` and
             ``attribution`` name the native frame and library, ``forensics/rules.py`` holds the
             infrastructure patterns and harness frames.
incidents    ``forensics/model.py``, drawn by ``forensics/render``.
"""
