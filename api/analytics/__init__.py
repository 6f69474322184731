"""Comms, competitor, market-intelligence and IR analytics: pure query builders and shapers.

- ``series``: per-brand counts per interval (volume, voices, sentiment/emotion/purpose mixes,
  complaints) from the raw mentions or from the hourly rollup, and which of the two to read.
- ``mixes``: counts into shares, net sentiment, share of voice, period-over-period deltas.
- ``bodies``: the other searches (complaint themes, influential authors, emerging topics, product
  feedback, investor chatter) and the shaping of their answers.
- ``reader``: the one piece with I/O: runs the count searches a ``series.ReadPlan`` asks for.
"""
