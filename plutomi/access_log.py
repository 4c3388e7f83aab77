"""gunicorn's access log without the secrets of emailed links (`--logger-class`).

A portal, reset or invite link carries its token in the path, and a page opened from one
sends it on as the Referer of its form: logged as they come, a log file would open
applications and reset passwords.
"""

from __future__ import annotations

from gunicorn.glogging import Logger as GunicornLogger

from plutomi import secret_links


class Logger(GunicornLogger):
    def atoms(self, resp, req, environ, request_time) -> dict:
        # Every atom a format may name: the request line and path, the referrer, and the
        # headers and environ variables that repeat them.
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            name: secret_links.hidden(value) if isinstance(value, str) else value
            for name, value in atoms.items()
        }
