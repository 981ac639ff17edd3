"""Commands that run or administer the service: ``newsrec serve``, ``newsrec keys``, ``newsrec token``.

Each module maps names to ``(add_arguments, run, help)``; the one ``newsrec`` entry point
(``training.cli``) lists them beside the offline jobs. Imports ``api`` and ``recommender``, never
``training``.
"""

from __future__ import annotations

from . import keys, serve

COMMANDS = {**serve.COMMANDS, **keys.COMMANDS}
