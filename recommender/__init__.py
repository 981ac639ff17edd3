"""newsrec's core library: no HTTP, no command line.

Layers, each importing only those below it (checked by import-linter, see pyproject.toml):

- ``evaluation``: splits, metrics, baselines, offline protocols
- ``serving``: catalog, live state, list building, explanations, the Engine
- ``models`` | ``datasets``: what is learned and fitted | importers and the synthetic sample
- ``text``: Indonesian text cleaning and article embedding
- ``store``: the Store contract and its backends
- base: ``domain``, ``params``, ``config``, ``vocab``, ``security``
"""
