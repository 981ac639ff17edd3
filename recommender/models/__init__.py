"""What is learned: interaction matrices, CF, the text-to-CF bridge, co-reading, popularity,
neighbours, fitting them all into a bundle (``fitting``), bundle files (``bundle``), which version
is live (``versions``: staged, promoted, rolled back), and the bundle as served (``served``).

May import the base modules, ``store`` and ``text``; never ``serving`` or ``evaluation``.
"""
