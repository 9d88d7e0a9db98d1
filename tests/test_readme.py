"""The README's code must run as printed."""

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_surgery_example_runs():
  with open(os.path.join(REPO, "README.md")) as f:
    text = f.read()
  section = text[text.index("## Surgery on your own Flax model"):]
  code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
  exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_readme_commands_exist():
  with open(os.path.join(REPO, "README.md")) as f:
    text = f.read()
  for config in set(re.findall(r"--config=(configs/[\w]+\.py)", text)):
    assert os.path.exists(os.path.join(REPO, config)), config
  with open(os.path.join(REPO, "Makefile")) as f:
    make = f.read()
  assert "\ndemo:" in make and "\ntest:" in make
  with open(os.path.join(REPO, ".ci", "run")) as f:
    assert "make test" in f.read()


def test_markdown_links_point_at_files_that_exist():
  """Every relative link and image in the README and docs/ (results figures move between folders) resolves."""
  pages = [os.path.join(REPO, "README.md")]
  for folder, _, names in os.walk(os.path.join(REPO, "docs")):
    pages += [os.path.join(folder, n) for n in names if n.endswith(".md")]
  checked, broken = 0, []
  for page in pages:
    with open(page) as f:
      text = f.read()
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
      if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
        continue
      checked += 1
      if not os.path.exists(os.path.join(os.path.dirname(page), target)):
        broken.append(f"{os.path.relpath(page, REPO)}: {target}")
  assert checked >= 3 and not broken, broken
