"""Dynamic padding: token id lists -> length-sorted, padded batches (pure numpy).

Sorting by length first means each batch pads only to its own longest text, so a batch of
short tweets does not pay for one long post. Used for inference, evaluation and training-time
feature extraction alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def pad(batch_ids: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), int64 arrays padded to the longest sequence in the batch."""
    width = max(len(ids) for ids in batch_ids)
    input_ids = np.full((len(batch_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch_ids), width), dtype=np.int64)
    for row, ids in enumerate(batch_ids):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return input_ids, mask


def padded_batches(ids: list[list[int]], batch_size: int, pad_id: int) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """Yield (row indices into ``ids``, input_ids, attention_mask) over length-sorted slices."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield (rows, *pad([ids[i] for i in rows], pad_id))
