"""data.existing_file: the check every file reader starts with."""

import pytest

from losstune.data import DataError, existing_file
from losstune.data.hdr_patch import load_patches
from losstune.data.lgt import load_latents
from losstune.data.npt import text_tokens

READERS = [load_patches, lambda path: load_latents(path, num_styles=2), lambda path: text_tokens(path, seq_len=8)]


@pytest.mark.parametrize("read", READERS)
def test_a_folder_where_a_file_is_expected_is_named_as_such(tmp_path, read):
    with pytest.raises(DataError, match=f"^{tmp_path}: a directory, where a file is expected$"):
        read(str(tmp_path))


@pytest.mark.parametrize("read", READERS)
def test_a_missing_file_is_named(tmp_path, read):
    with pytest.raises(DataError, match=f"^{tmp_path / 'absent.npz'}: no such file$"):
        read(str(tmp_path / "absent.npz"))


def test_an_existing_file_comes_back_as_a_path(tmp_path):
    file = tmp_path / "corpus.txt"
    file.write_text("abc")
    assert existing_file(str(file)) == file
