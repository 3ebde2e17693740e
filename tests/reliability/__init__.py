"""The reliability suite: bad input, crashes and determinism, as tests a reviewer reads as a list.

- ``test_bad_input``: every bad input refused with what/where/fix, before any step, nothing written.
- ``test_kills``: SIGKILLed training and experiment chains resume to bit-identical results.
- ``test_atomic_writes``: every file the project writes appears whole or not at all.
- ``test_determinism``: masks, tickets and chains identical across runs, ranks and process counts.
- ``test_command_line_settings``: ``--ckpt_path`` no longer overrides the command line's settings.

Run: ``nice -n 10 .venv/bin/python -m pytest tests/reliability -q``; the session ends with
"reliability: N bad inputs, K kills survived, R races, F files checked" (see ``conftest.py``).
"""
