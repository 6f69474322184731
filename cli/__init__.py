"""The ``earshot`` command: the composition root. It imports every part; no part imports it."""
