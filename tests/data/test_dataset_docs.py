"""The folder trees shown by the missing-dataset error are the ones docs/DATASETS.md documents."""
import os

import pytest

from ccnet_d2.data.checks import EXPECTED_TREES
from tests.common import REPO_ROOT


@pytest.mark.parametrize("prefix", sorted(EXPECTED_TREES))
def test_expected_tree_appears_verbatim_in_the_dataset_docs(prefix):
    with open(os.path.join(REPO_ROOT, "docs", "DATASETS.md")) as f:
        docs = f.read()
    assert EXPECTED_TREES[prefix] in docs, f"docs/DATASETS.md lacks the tree of {prefix!r}*:\n{EXPECTED_TREES[prefix]}"
