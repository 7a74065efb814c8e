"""Every error vae_jax raises for input a user can fix. A leaf module: it imports nothing of
vae_jax, so any module may raise these without an import cycle. `str(e)` is always one line naming
the problem and the fix; the CLI prints it and exits with status 2 (`USER_ERRORS`).
"""


class ConfigError(ValueError):
  """A bad config file, config value or override."""


class DataError(Exception):
  """Bad data input (a missing or malformed dataset, arrays of a wrong shape or dtype)."""


class RunError(RuntimeError):
  """A run cannot start or continue (a conflicting run directory, every run non-finite, ...)."""


class CheckpointError(RuntimeError):
  """A checkpoint is missing or unreadable."""


class LockedError(RuntimeError):
  """Another live process holds a run directory."""


class ScoreError(ValueError):
  """A score (FID / IS, anomaly score) cannot be computed from the given runs."""


class ExploreError(ValueError):
  """A run the latent explorer cannot show, or a request outside the run's ranges."""


def one_line(e: BaseException, limit: int = 300) -> str:
  """An exception's text on one line (whitespace collapsed), at most `limit` characters: for
  embedding a library's error in one of ours."""
  text = " ".join(str(e).split()) or type(e).__name__
  return text if len(text) <= limit else text[:limit] + "..."


USER_ERRORS = (ConfigError, DataError, RunError, CheckpointError, LockedError, ScoreError,
               ExploreError)
