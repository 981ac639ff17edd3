"""Experiments on live traffic: A/B splits and team-draft interleaving of model versions and
ranking parameters, with reports counted from the served lists and the clicks that name them.

``definition`` (what an experiment is), ``assignment`` (sticky hashing of readers to variants),
``interleaving`` (team draft), ``stats`` and ``report`` (the numbers), ``registry`` (create, stop,
report over a store), ``variants`` and ``router`` (serving), ``simulation`` (synthetic readers).
"""
