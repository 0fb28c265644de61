import numpy as np
import pytest

from medfuse.clinical.intensity import (
    CT_WINDOWS,
    CtWindow,
    apply_window,
    check_percentiles,
    normalise,
    percentile_clip,
)


def test_named_windows_in_hu():
    assert CT_WINDOWS == {
        "brain": (40.0, 80.0),
        "subdural": (75.0, 215.0),
        "bone": (600.0, 2800.0),
        "soft-tissue": (50.0, 400.0),
    }
    hu = np.array([-1000.0, 0.0, 20.0, 40.0, 60.0, 80.0, 3000.0])
    unit, mapping = apply_window(hu, CtWindow.named("brain"))
    np.testing.assert_allclose(unit, [0, 0, 0.25, 0.5, 0.75, 1, 1])
    assert unit.dtype == np.float32
    assert (mapping.low, mapping.high, mapping.level, mapping.width) == (0.0, 80.0, 40.0, 80.0)
    assert mapping.describe() == "window brain L40 W80 HU" and mapping.brief() == "win brain"


def test_explicit_window_equals_named_one():
    hu = np.linspace(-1200, 3000, 101)
    explicit, mapping = apply_window(hu, CtWindow.parse("600/2800"))
    named, _ = apply_window(hu, CtWindow.parse("bone"))
    np.testing.assert_array_equal(explicit, named)
    assert mapping.describe() == "window L600 W2800 HU" and mapping.brief() == "win 600/2800"


@pytest.mark.parametrize(
    "text, message",
    [
        ("lung", "unknown CT window 'lung'"),
        ("40/0", "positive width"),
        ("40/-5", "positive width"),
        ("forty/80", "expected a name or LEVEL/WIDTH"),
    ],
)
def test_bad_windows(text, message):
    with pytest.raises(ValueError, match=message):
        CtWindow.parse(text)


def test_percentile_clip_maps_percentiles_to_unit_range():
    volume = np.arange(1000, dtype=np.float64).reshape(10, 10, 10)
    unit, mapping = percentile_clip(volume, 1, 99)
    assert mapping.low == pytest.approx(np.percentile(volume, 1)) and mapping.high == pytest.approx(9.99 * 99)
    assert unit.min() == 0 and unit.max() == 1 and unit.dtype == np.float32
    middle = (volume > mapping.low) & (volume < mapping.high)
    np.testing.assert_allclose(unit[middle], (volume[middle] - mapping.low) / (mapping.high - mapping.low), atol=1e-6)
    assert mapping.describe().startswith("percentiles 1-99 (") and mapping.brief() == "pct 1-99"


def test_default_percentiles_and_constant_volume():
    volume = np.random.default_rng(0).normal(size=(8, 8, 8))
    unit, mapping = normalise(volume)
    assert mapping.percentiles == (0.5, 99.5) and mapping.method == "percentiles"
    assert 0 <= unit.min() and unit.max() <= 1
    constant, _ = percentile_clip(np.full((4, 4, 2), 7.0))
    assert not constant.any()


def test_normalise_uses_the_window_when_given():
    hu = np.array([-1000.0, 40.0, 1000.0])
    unit, mapping = normalise(hu, CtWindow.named("soft-tissue"))
    assert mapping.method == "window" and unit[1] == pytest.approx(0.475)


def test_bad_percentiles_and_values():
    for low, high in [(-1, 50), (50, 50), (2, 101)]:
        with pytest.raises(ValueError, match="0 <= low < high <= 100"):
            check_percentiles(low, high)
    with pytest.raises(ValueError, match="NaN"):
        percentile_clip(np.array([0.0, np.nan]))
