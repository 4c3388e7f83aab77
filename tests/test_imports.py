"""Every service module imports on its own, first thing in a fresh interpreter.

The services import one another; a cycle only breaks when its modules are imported in one
order (gunicorn's wsgi:app reaches rules before board, the tests mostly the other way), so
each module is tried first in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> list[str]:
    services = sorted((ROOT / "plutomi" / "services").glob("*.py"))
    return ["wsgi"] + [f"plutomi.services.{p.stem}" for p in services if p.stem != "__init__"]


def _import_alone(env: dict[str, str], module: str) -> tuple[str, str]:
    command = [sys.executable, "-c", f"import {module}"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    return module, done.stderr.strip().splitlines()[-1] if done.returncode else ""


def test_each_service_module_imports_first_in_a_fresh_interpreter(tmp_path):
    # wsgi makes an app: its instance folder, key and Redis are the test's, not the checkout's.
    env = os.environ | {
        "INSTANCE_PATH": str(tmp_path),
        "SECRET_KEY": "test-imports",
        "REDIS_URL": "redis://127.0.0.1:9/0",  # never connected to by an import
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(partial(_import_alone, env), _modules())
        failed = {module: error for module, error in results if error}
    assert failed == {}
