"""`make run`: migrate, load the demo once, then run web, worker and cron from the Procfile.

Embedded Redis is started here, once, and its socket is handed to every process through
REDIS_URL, so they all share one server; Ctrl-C stops the processes and then the server.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

from honcho.environ import parse_procfile
from honcho.manager import Manager

from plutomi import ROOT, embedded_redis


def _banner(url: str, lines: list[str]) -> None:
    width = max(len(line) for line in [url, *lines]) + 4
    print("\n" + "=" * width, flush=True)
    print(f"  Plutomi is up at {url}", flush=True)
    for line in lines:
        print(f"  {line}", flush=True)
    print("=" * width + "\n", flush=True)


def _announce_when_up(url: str, lines: list[str]) -> None:
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    _banner(url, lines)
                    return
        except OSError:
            pass
        time.sleep(0.5)
    print("The web process did not answer /healthz within 150 s; see its log above.", flush=True)


def _shown(folder: Path) -> str:
    """instance/ when it is the checkout's own, else the full path."""
    return "instance/" if folder == (ROOT / "instance").resolve() else str(folder)


def main() -> int:
    # Every process (web, worker, cron) reads INSTANCE_PATH, so they share one instance folder.
    instance = Path(os.environ.get("INSTANCE_PATH") or ROOT / "instance").resolve()
    instance.mkdir(parents=True, exist_ok=True)
    os.environ["INSTANCE_PATH"] = str(instance)
    os.environ.setdefault("PORT", "5000")
    os.environ.setdefault("HOST", "127.0.0.1")
    url = f"http://127.0.0.1:{os.environ['PORT']}"
    os.environ.setdefault("BASE_URL", url)
    if not os.environ.get("SMTP_URL"):
        os.environ.setdefault("DEV_MAILBOX", "1")
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = embedded_redis.start(instance)

    from flask_migrate import upgrade

    from plutomi import create_app
    from plutomi.services import demo

    app = create_app()
    with app.app_context():
        upgrade()
        created, password = demo.load(os.environ.get("DEMO_PASSWORD"))
    if created:
        login = f"Log in as {demo.EMAIL} with password {password}  (shown this once)"
    else:
        login = f"Log in as {demo.EMAIL} (its password was printed on the first run)"
    lines = [login]
    if app.config["DEV_MAILBOX"]:
        lines.append(
            f"Mail is captured, not sent: read it at {url}/dev/mailbox "
            "(a lost password too: 'Forgot your password?' mails its link there)"
        )
    if os.environ.get("DATABASE_URL"):
        kept = f"the database is DATABASE_URL's; uploads stay in {_shown(instance)}"
    else:
        kept = f"the data stays in {_shown(instance)}"
    lines.append(f"Ctrl-C stops everything; {kept}.")

    procfile = parse_procfile(Path(ROOT / "Procfile").read_text())
    manager = Manager()
    env = dict(os.environ)
    # The venv's scripts (gunicorn, rq) come first on the PATH of every process.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for name, process in procfile.processes.items():
        manager.add_process(name, process, env=env, cwd=str(ROOT))
    threading.Thread(target=_announce_when_up, args=(url, lines), daemon=True).start()
    manager.loop()
    embedded_redis.stop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
