"""A step for test_study_reports' run_steps test, in a module of its own: a spawned worker that
unpickles it imports this alone, not the test module (which imports JAX and the study runners)."""

import os


def pid_and_cores(_):
  """(this process's pid, the CPU cores it may run on)."""
  return os.getpid(), os.sched_getaffinity(0)
