"""Answering requests: the catalog of a loaded model plus fresh articles, the live state that
follows the store, list building (``ranking``), explanations and the :class:`Engine` facade.

May import ``models``, ``text``, ``store`` and the base modules; never ``evaluation``.
"""
