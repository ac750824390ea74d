"""govshare composition root: settings, database, auth, problems, app factory and CLI.

The bounded contexts (``catalog``, ``quality``, ``access``) import the shared kernel
from here (``settings``, ``db``, ``auth``, ``problems``) but never ``app`` or ``cli``,
which import them.
"""

__version__ = "0.1.0"
