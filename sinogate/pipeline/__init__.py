"""The message pipeline, phase 1: handlers applied in order to every message before the commit.

See ``base`` for the handler contract, ``chain`` for the order, ``runner`` for how a chain runs.
Logic that is not about reading bytes lives here, never in a codec.
"""
