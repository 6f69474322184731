"""Dynamic padding over length-sorted batches (pure)."""

import numpy as np

from models.batching import pad, padded_batches


def test_pad_to_the_longest_in_the_batch_with_a_mask():
    ids, mask = pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert ids.dtype == mask.dtype == np.int64


def test_batches_are_length_sorted_cover_every_row_once_and_pad_only_to_their_own_longest():
    ids = [[1] * n for n in (9, 2, 5, 3, 1)]
    batches = list(padded_batches(ids, batch_size=2, pad_id=0))
    assert [rows for rows, _, _ in batches] == [[4, 1], [3, 2], [0]]
    assert [b.shape[1] for _, b, _ in batches] == [2, 5, 9]
    for rows, _, mask in batches:
        assert mask.sum(1).tolist() == [len(ids[r]) for r in rows]
