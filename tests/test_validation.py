"""pyro_groups.validation: what each check accepts (and returns), and the error hierarchy."""
import math

import numpy as np
import pytest
import torch

from pyro_groups.data import DataFileError, GroupDataError
from pyro_groups.validation import (
    ArgumentError,
    ArgumentKeyError,
    ArgumentTypeError,
    PyroGroupsError,
    check_choice,
    check_device,
    check_finite_array,
    check_float,
    check_int,
    check_output_dir,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_tensor,
)


def test_error_hierarchy():
    for cls in (ArgumentError, ArgumentTypeError, ArgumentKeyError, GroupDataError, DataFileError):
        assert issubclass(cls, PyroGroupsError) and issubclass(cls, ValueError)
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentKeyError, KeyError)
    assert str(ArgumentKeyError("unknown factor 'x'")) == "unknown factor 'x'"  # no quotes


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3), torch.tensor(3)])
def test_check_int_accepts_integers(value):
    out = check_int(value, "n", min=0, max=3)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize(
    "value, error, match",
    [
        (True, ArgumentTypeError, "n must be an integer, got the bool True"),
        (np.bool_(False), ArgumentTypeError, "bool"),
        (3.0, ArgumentTypeError, r"n must be an integer, got 3.0 \(float\)"),
        ("3", ArgumentTypeError, r"got '3' \(str\)"),
        (None, ArgumentTypeError, "NoneType"),
        (torch.tensor(3.0), ArgumentTypeError, "Tensor"),
        (-1, ArgumentError, r"n must be an integer in \[0, 3\], got -1"),
        (4, ArgumentError, r"in \[0, 3\], got 4"),
    ],
)
def test_check_int_rejects(value, error, match):
    with pytest.raises(error, match=match):
        check_int(value, "n", min=0, max=3)


def test_positive_int_and_float_helpers():
    assert check_positive_int(1, "k") == 1
    with pytest.raises(ArgumentError, match="k must be an integer >= 1, got 0"):
        check_positive_int(0, "k")
    assert check_positive_float(np.float32(0.5), "s") == 0.5
    with pytest.raises(ArgumentError, match=r"s must be > 0.0, got 0.0"):
        check_positive_float(0, "s")
    assert check_probability(1, "p") == 1.0
    with pytest.raises(ArgumentError, match=r"p must be in \(0.0, 1.0\), got 1.0"):
        check_probability(1.0, "p", open=True)


@pytest.mark.parametrize("value", [2, 2.0, np.float64(2.0), torch.tensor(2.0), np.array([2.0])])
def test_check_float_accepts_reals(value):
    out = check_float(value, "x", min=0.0)
    assert out == 2.0 and type(out) is float


@pytest.mark.parametrize(
    "value, kwargs, error, match",
    [
        (True, {}, ArgumentTypeError, "bool"),
        ("1", {}, ArgumentTypeError, "real number"),
        (None, {}, ArgumentTypeError, "real number"),
        (1 + 2j, {}, ArgumentTypeError, "real number"),
        (math.nan, {}, ArgumentError, "x must be a finite number, got nan"),
        (math.inf, {}, ArgumentError, "finite"),
        (-0.5, {"min": 0.0}, ArgumentError, r"x must be >= 0.0, got -0.5"),
        (0.0, {"min": 0.0, "min_open": True}, ArgumentError, "x must be > 0.0"),
        (2.0, {"max": 1.0}, ArgumentError, "x must be <= 1.0"),
    ],
)
def test_check_float_rejects(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_float(value, "x", **kwargs)


def test_check_float_allows_inf_on_request():
    assert check_float(math.inf, "x", allow_inf=True) == math.inf


def test_check_choice():
    assert check_choice("a", "mode", ("a", "b")) == "a"
    with pytest.raises(ArgumentError, match="unknown mode 'c': mode must be one of 'a', 'b'"):
        check_choice("c", "mode", ("b", "a"))
    with pytest.raises(ArgumentError, match="unknown mode"):
        check_choice([1], "mode", {"a"})  # unhashable


def test_check_finite_array():
    arr = check_finite_array(torch.ones(2, 3), "a", ndim=2)
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 3)
    bad = np.ones((2, 3))
    bad[1, 2] = np.inf
    with pytest.raises(ArgumentError, match=r"a has 1 non-finite .* index \(1, 2\)"):
        check_finite_array(bad, "a")
    with pytest.raises(ArgumentError, match="a must be 1-D or 2-D, got shape"):
        check_finite_array(np.ones((1, 1, 1)), "a", ndim=(1, 2))
    with pytest.raises(ArgumentError, match="a is empty"):
        check_finite_array([], "a")
    with pytest.raises(ArgumentTypeError, match="must hold numbers"):
        check_finite_array(["x"], "a")
    assert check_finite_array(["x"], "a", numeric=False).dtype.kind == "U"


def test_check_tensor():
    t = torch.zeros(2, 3)
    assert check_tensor(t, "t", dim=2, shape=(None, 3), floating=True, device="cpu") is t
    with pytest.raises(ArgumentTypeError, match="torch.as_tensor"):
        check_tensor(np.zeros(2), "t")
    with pytest.raises(ArgumentError, match=r"t must have shape \[\*, 4\], got \[2, 3\]"):
        check_tensor(t, "t", shape=(None, 4))
    with pytest.raises(GroupDataError, match="floating-point"):
        check_tensor(t.long(), "t", floating=True, error=GroupDataError)
    with pytest.raises(ArgumentError, match="at least 3"):
        check_tensor(t, "t", min_dim=3)
    with pytest.raises(ArgumentError, match="dtype torch.float64"):
        check_tensor(t, "t", dtype=torch.float64)


def test_check_device_and_output_dir(tmp_path):
    assert check_device(None) == torch.device("cpu")
    assert check_device("cpu") == check_device(torch.device("cpu"))
    with pytest.raises(ArgumentTypeError, match="device must be a string"):
        check_device(0)
    assert check_output_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    assert not (tmp_path / "new").exists()  # nothing is created
    assert check_output_dir(str(tmp_path)) == tmp_path
