"""Links whose last part is a secret: a portal sign-in, a password reset, an invite, an
unsubscribe. The database keeps only their hashes; nothing else should keep them either."""

from __future__ import annotations

import re

# The tokens are long (43 characters, or a signature); the portal's own pages (answers,
# files, withdraw, link) are short words and stay as they are.
SECRET_LINK = re.compile(r"(/(?:portal|password/reset|invites|unsubscribe)/)[\w.-]{20,}")


def hidden(text: str, mark: str = "[secret]") -> str:
    """text with the secret of every such link replaced by mark."""
    return SECRET_LINK.sub(lambda found: found.group(1) + mark, text)
