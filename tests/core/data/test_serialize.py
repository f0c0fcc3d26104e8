from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.data import serialize


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
    ),
    st.text(max_size=10),
)
def test_roundtrip_arrays_and_structure(array: np.ndarray, text: str) -> None:
    sample = {"a": array, "t": torch.from_numpy(array.copy()), "nested": [text, (array.T,)]}
    out = serialize.loads(serialize.dumps(sample))
    np.testing.assert_array_equal(out["a"], array)
    assert out["a"].dtype == array.dtype
    assert isinstance(out["t"], torch.Tensor)
    np.testing.assert_array_equal(out["t"].numpy(), array)
    assert out["nested"][0] == text
    np.testing.assert_array_equal(out["nested"][1][0], array.T)


def test_copy_is_independent_and_views_are_read_only() -> None:
    blob = serialize.dumps({"x": np.arange(4)})
    out = serialize.loads(blob)
    out["x"][0] = 99
    assert serialize.loads(blob)["x"][0] == 0
    view = serialize.loads(blob, copy=False)["x"]
    assert not view.flags.writeable


def test_bfloat16_and_noncontiguous_tensors() -> None:
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()
    b = torch.ones(3, dtype=torch.bfloat16)
    out = serialize.loads(serialize.dumps([t, b]))
    assert torch.equal(out[0], t)
    assert out[1].dtype == torch.bfloat16 and torch.equal(out[1], b)


def test_truncated_blob_is_an_error() -> None:
    blob = serialize.dumps(np.arange(100))
    with pytest.raises(ValueError, match="truncated"):
        serialize.loads(blob[:-10])
