"""The docs site builds strictly (no warnings, no broken links), its API pages cover the
experiment layer, the command and seqjax.xla, every ``seqjax.*`` name the docs mention
exists, and the README stays short."""

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seqjax import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = (
    "index.html",
    "concepts/index.html",
    "experiments/index.html",
    "scaling/index.html",
    "diagnostics/index.html",
    "own-cell/index.html",
    "performance/index.html",
    "troubleshooting/index.html",
    "api/cells/index.html",
    "api/train/index.html",
    "api/experiment/index.html",
    "api/cli/index.html",
    "api/xla/index.html",
)
# Objects each API page must render from its docstrings (mkdocstrings anchors).
RENDERED = {
    "api/cells/index.html": ["seqjax.cells.lstm.lstm"],
    "api/experiment/index.html": [
        f"seqjax.experiment.{name}"
        for name in (
            "config.ExperimentConfig",
            "config.load_config",
            "builders.Hyper",
            "builders.model_from_config",
            "sweep.grid_cells",
            "program.Experiment",
            "program.train_from_config",
            "runs.write_atomic",
            "recorder.Recorder",
            "report.write_report",
            "runner.RunResult",
            "runner.run",
        )
    ],
    "api/cli/index.html": ["seqjax.cli", "seqjax.cli.main"],
    "api/xla/index.html": ["seqjax.xla.configure"],
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("docs") / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            "docs/mkdocs.yml",
            "-d",
            str(site),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return site


def test_docs_build_strictly(site):
    for page in PAGES:
        assert (site / page).is_file(), f"{page} missing from the built site"


@pytest.mark.parametrize("page", sorted(RENDERED))
def test_api_pages_are_rendered_from_the_docstrings(site, page):
    html = (site / page).read_text()
    assert ":::" not in html  # not left as `::: module` text
    for name in RENDERED[page]:
        assert f'id="{name}"' in html, f"{name} is not rendered on {page}"


def test_the_cli_page_names_every_command_and_flag():
    text = (ROOT / "docs/pages/api/cli.md").read_text()
    (commands,) = [
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ]
    for name, parser in commands.choices.items():
        assert f"`seqjax {name}" in text, f"seqjax {name} is not on the cli page"
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert flag in text, f"seqjax {name} {flag} is not on the cli page"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def test_every_seqjax_name_in_the_docs_exists():
    files = [ROOT / "README.md", *sorted((ROOT / "docs/pages").rglob("*.md"))]
    missing = []
    for path in files:
        for dotted in set(re.findall(r"(?<![\w/.-])seqjax(?:\.[A-Za-z_]\w*)+", path.read_text())):
            if not _resolves(dotted):
                missing.append(f"{path.relative_to(ROOT)}: {dotted}")
    assert not missing, "names the docs mention but seqjax lacks:\n" + "\n".join(missing)


def test_readme_is_short_and_names_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "make run" in readme
    assert "make test" in readme
