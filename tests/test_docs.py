"""The code in README.md and docs/*.md runs as written and shows what it says."""

import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@functools.cache
def run_blocks(page: Path) -> dict:
    """Execute the page's ```python blocks in order, in one namespace; return it."""
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
        exec(compile(block, str(page), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page):
    run_blocks(page)


def test_readme_example_records_a_frame_and_a_gradient():
    namespace = run_blocks(ROOT / "README.md")
    assert namespace["frame"].image.shape == (128, 128)
    assert float(namespace["jax"].grad(namespace["total_signal"])(20.0)) != 0.0


def test_docs_recipes_batch_and_show_beam_damage():
    namespace = run_blocks(ROOT / "docs" / "index.md")
    assert namespace["images"].shape == (32, 96, 96)
    assert float(namespace["displaced"].sum()) > 0  # 200 keV knocks S out of MoS2
