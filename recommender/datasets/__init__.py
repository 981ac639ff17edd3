"""Where data comes from: importers of JSON Lines, CSV and MIND files into a store (``ingest``)
and the synthetic Indonesian sample generator (``synthetic``).

May import ``store`` and the base modules; never ``models``, ``serving`` or ``evaluation``.
"""
