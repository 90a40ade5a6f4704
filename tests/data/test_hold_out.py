"""data.hold_out: the validation split of a single data file, and its refusal of too few items."""

import numpy as np
import pytest

from losstune.data import DataError, hold_out


def test_the_last_fraction_of_every_array_is_held_out():
    x, y = np.arange(10), np.arange(10) * 10
    # 10 items at 0.2: round(2.0) = 2 held out, the last two of each array
    train_x, train_y, val_x, val_y = hold_out((x, y), 0.2, "p.npz", "patches")
    assert train_x.tolist() == list(range(8)) and val_x.tolist() == [8, 9] and val_y.tolist() == [80, 90]


def test_at_least_one_item_is_held_out():
    *_, val = hold_out((np.arange(3),), 0.01, "p.npz", "patches")  # round(0.03) = 0, raised to 1
    assert val.tolist() == [2]


def test_one_item_is_refused_in_one_line_naming_the_file():
    with pytest.raises(DataError, match=r"^p\.npz: 1 patches are too few to hold some out \(data\.val_fraction 0\.2\)$"):
        hold_out((np.arange(1),), 0.2, "p.npz", "patches")
