"""Every service module imports on its own, first thing in a fresh interpreter.

The services import one another; a cycle only breaks when its modules are imported in one
order (gunicorn's wsgi:app reaches rules before board, the tests mostly the other way), so
each module is tried first in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> list[str]:
    services = sorted((ROOT / "plutomi" / "services").glob("*.py"))
    return ["wsgi"] + [f"plutomi.services.{p.stem}" for p in services if p.stem != "__init__"]


def _import_alone(module: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True
    )
    return module, done.stderr.strip().splitlines()[-1] if done.returncode else ""


def test_each_service_module_imports_first_in_a_fresh_interpreter():
    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = {m: error for m, error in pool.map(_import_alone, _modules()) if error}
    assert failed == {}
