"""Repository style: Python blocks are indented by 2 spaces (no 4-space or tab blocks)."""

import io
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("vae_jax", "experiments", "tests", "examples")


def block_indent_errors(source: str) -> list[str]:
  """'line N: ...' for every block (INDENT token) that is not exactly 2 spaces deeper than the
  enclosing block. Continuation lines inside brackets are free (they are not blocks)."""
  errors, levels = [], [0]
  for tok in tokenize.generate_tokens(io.StringIO(source).readline):
    if tok.type == tokenize.INDENT:
      step = len(tok.string) - levels[-1]
      if "\t" in tok.string or step != 2:
        errors.append(f"line {tok.start[0]}: block indented by {tok.string!r} "
                      f"({step:+d} columns, want +2 spaces)")
      levels.append(len(tok.string))
    elif tok.type == tokenize.DEDENT:
      levels.pop()
  return errors


@pytest.mark.parametrize("source,n_errors", [
    ("def f():\n  if x:\n    return 1\n  return (2,\n          3)\n", 0),
    ("def f():\n    return 1\n", 1),
    ("class A:\n  def f(self):\n      return 1\n", 1),
    ("def f():\n\treturn 1\n", 1),
])
def test_checker_flags_non_two_space_blocks(source, n_errors):
  assert len(block_indent_errors(source)) == n_errors


def test_python_files_use_two_space_blocks():
  files = sorted(p for root in ROOTS for p in (REPO / root).rglob("*.py"))
  assert len(files) > 10
  bad = [f"{p.relative_to(REPO)}:{e}" for p in files for e in block_indent_errors(p.read_text())]
  assert not bad, "4-space (or tab) blocks; the repository uses 2 spaces:\n" + "\n".join(bad[:30])
