"""Indonesian text: cleaning and tokenizing (``cleaning``), and articles to vectors (``embedding``).

Imports only ``recommender.domain`` and the base modules; nothing here knows about events or models.
"""
