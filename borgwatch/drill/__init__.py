"""Restore drills, borg-free: the plan from the config, the sample choice, the verification of restored
files, coverage bookkeeping, the result and its metrics. Borg facts live in ``borgwatch.borg.extract``."""
