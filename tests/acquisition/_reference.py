"""Reference data shared by the acquisition tests (read from JSON; no BoTorch needed)."""

import json
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


@cache
def botorch_reference() -> dict:
    """BoTorch and mpmath reference values (see the file's provenance block)."""
    return json.loads((DATA / "botorch_analytic_reference.json").read_text())
