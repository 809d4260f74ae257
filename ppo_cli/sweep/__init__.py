"""Many runs at once: searches over settings, seeds, Optuna studies, IQM and bootstrap CIs.

Optuna is an optional dependency (`pip install ppoqa[sweep]`); only storage.py, worker.py and
report.py import it, and only inside functions, so `ppoqa --help` never pays for it.
"""
