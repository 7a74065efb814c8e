"""MkDocs hook: the study READMEs (experiments/*/*.md), their figures and the examples are served
from where they live in the repository, at the same paths, so the pages link to them as the
README does and `mkdocs build --strict` checks those links."""

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = ("experiments/*/*.md", "experiments/*/*.png", "experiments/*/figures/**/*.png",
            "examples/*.py")


def on_files(files, config):
  for pattern in PATTERNS:
    for path in sorted(ROOT.glob(pattern)):
      rel = path.relative_to(ROOT).as_posix()
      if files.get_file_from_path(rel) is None:
        files.append(File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"]))
  return files
