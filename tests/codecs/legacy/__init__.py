"""A frozen copy of the H02 and JT/T 808 decoding modules as they were before the throughput work
(commit 068ea3f): the oracle ``tests/codecs/test_fast_equivalence.py`` holds the optimised codecs
to, message by message (same keys in the same order, same values, same types), same replies, same
errors. Never edit these files to make a test pass; only the oracle's imports were rewritten.
"""
