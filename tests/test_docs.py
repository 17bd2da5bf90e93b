"""The docs cannot go stale: README's and docs/'s generated tables equal what their JSON (or the
code) says, every relative link resolves, and the license and citation files match the package."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]



def _load_tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


tables = _load_tables()


def test_generated_tables_match_their_sources():
    stale = tables.check(ROOT)
    assert stale == [], "\n".join(stale)


def test_every_table_is_used_and_every_source_exists():
    used = {name for path in tables.doc_files(ROOT) for name, _ in tables.regions(path.read_text(encoding="utf-8"))}
    assert used == set(tables.TABLES), f"tables registered but in no page: {sorted(set(tables.TABLES) - used)}"
    for name, t in tables.TABLES.items():
        srcs = () if t.source is None else t.source if isinstance(t.source, tuple) else (t.source,)
        for s in srcs:
            assert (ROOT / s).is_file(), f"table {name!r}: source {s} missing"


def _copy_docs(tmp_path: Path) -> Path:
    """README, docs/ and the JSON results under a fresh root (pictures left out)."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results",
                    ignore=shutil.ignore_patterns("*.png", "*.csv"))
    return tmp_path


def test_check_names_the_table_whose_json_changed_and_rewrite_fixes_it(tmp_path):
    root = _copy_docs(tmp_path)
    names = {"env_speed", "agents_single_es"}
    assert tables.check(root, names) == []
    src = root / "benchmarks" / "results" / "env_speed.json"
    d = json.loads(src.read_text())
    d["MEG/SingleES-v1"] *= 2.0  # a new measurement
    d["single_over_cartpole"] *= 2.0
    src.write_text(json.dumps(d))
    stale = tables.check(root, names)
    assert stale and all("'env_speed'" in line for line in stale)
    assert any(line.startswith("README.md:") for line in stale)
    before = (root / "README.md").read_text()
    changed = tables.rewrite(root, names)
    assert root / "README.md" in changed
    assert tables.check(root, names) == []
    after = (root / "README.md").read_text()
    assert after != before
    assert f"{d['MEG/SingleES-v1']:,.0f}" in after  # the new number is what README shows
    # outside the markers nothing moved
    assert re.sub(tables.MARKER, "", after) == re.sub(tables.MARKER, "", before)
    assert not list(root.glob("*.tmp")) and not list(root.glob(".README.md.*"))


def test_bad_markers_are_one_line_errors_naming_the_problem():
    with pytest.raises(ValueError, match=r"'table' must be one of .*\(got 'no_such_table'\)"):
        tables.regions("<!-- table:no_such_table -->\n<!-- /table -->\n", "X.md")
    with pytest.raises(ValueError, match=r"X.md: every .* line needs its own"):
        tables.regions("<!-- table:env_speed -->\nno end\n", "X.md")
    with pytest.raises(ValueError, match="'table' must be one of"):
        tables.render("nope")


def test_missing_source_names_the_file(tmp_path):
    (tmp_path / "README.md").write_text("<!-- table:env_speed -->\n<!-- /table -->\n")
    with pytest.raises(FileNotFoundError, match="env_speed.json"):
        tables.check(tmp_path)


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    h = re.sub(r"[`*_]", "", heading.strip().lower())
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def test_every_relative_link_resolves():
    bad = []
    for page in tables.doc_files(ROOT):
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
        for target in _LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                bad.append(f"{page.relative_to(ROOT)}: {target} (no heading with that anchor)")
    assert bad == [], "\n".join(bad)


def test_license_and_citation_match_the_package():
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert str(cff["version"]) == version
    assert cff["authors"] == [{"name": "meg_gym contributors"}]
    assert str(cff["date-released"]) == "2026-12-01"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 meg_gym contributors" in text


@pytest.mark.slow
def test_readme_code_runs():
    """The README's Python blocks, as a user pastes them (PPO on 2,048 steps and one live request: minutes)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) >= 2
    for k, code in enumerate(blocks):
        exec(compile(code, f"README.md python block {k}", "exec"), {"__name__": f"readme_{k}"})
