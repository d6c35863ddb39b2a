"""The PTZ owner's arithmetic (bridge/ptz.py), without cameras: moves by a fraction of the
field of view, zoom by a magnification factor, timed moves, and the position estimate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.cameras.base import PtzGeometry, PtzVector
from bridge.ptz import (
    MIN_TIMED_MOVE,
    advance,
    clamp,
    field_of_view,
    fov_translation,
    magnification,
    rates,
    timed_move,
    travel_time,
    zoom_by_factor,
)

unit = st.floats(-1.0, 1.0)
zoom_position = st.floats(0.0, 1.0)
speed = st.none() | st.floats(0.05, 1.0)
geometries = st.builds(
    PtzGeometry,
    pan_degrees=st.floats(90.0, 360.0),
    tilt_degrees=st.floats(45.0, 180.0),
    fov=st.tuples(st.floats(20.0, 90.0), st.floats(15.0, 70.0)),
    zoom_ratio=st.floats(1.0, 30.0),
    pan_rate=st.floats(5.0, 200.0),
    tilt_rate=st.floats(5.0, 120.0),
    zoom_rate=st.floats(0.05, 1.0),
)
positions = st.builds(PtzVector, unit, unit, zoom_position)
velocities = st.builds(PtzVector, unit, unit)
AXIS_213 = PtzGeometry(340.0, 100.0, (47.0, 35.0), 26.0, 42.5, 12.5, 0.25)


def test_a_fov_move_of_one_is_half_the_picture() -> None:
    # The AXIS 213 at its wide end: half of a 47 degree picture is 23.5 of 340 degrees.
    delta = fov_translation(1.0, -1.0, AXIS_213, 0.0)
    assert (delta.pan, delta.tilt) == pytest.approx((23.5 * 2 / 340, -17.5 * 2 / 100))
    # Zoomed to 2x (zoom 1/25 of 26x), the same move turns half as far.
    assert fov_translation(1.0, 0.0, AXIS_213, 1 / 25).pan == pytest.approx(23.5 / 340)


@given(geometries, unit, unit, zoom_position)
def test_fov_translation_turns_by_that_fraction_of_the_field_of_view(
    geometry: PtzGeometry, pan: float, tilt: float, zoom: float
) -> None:
    delta = fov_translation(pan, tilt, geometry, zoom)
    horizontal, vertical = field_of_view(geometry, zoom)
    assert delta.pan * geometry.pan_degrees / 2 == pytest.approx(pan * horizontal / 2)
    assert delta.tilt * geometry.tilt_degrees / 2 == pytest.approx(tilt * vertical / 2)
    assert delta.zoom == 0.0


@given(geometries, st.floats(0.0, 40.0), zoom_position)
def test_zoom_by_factor_multiplies_the_magnification_within_the_lens(
    geometry: PtzGeometry, factor: float, zoom: float
) -> None:
    after = zoom + zoom_by_factor(factor, geometry, zoom)
    wanted = min(geometry.zoom_ratio, max(1.0, magnification(geometry, zoom) * factor))
    if geometry.zoom_ratio > 1.0:
        assert magnification(geometry, after) == pytest.approx(wanted)
    else:
        assert after == zoom  # a fixed lens does not zoom
    assert -1e-9 <= after <= 1.0 + 1e-9


@given(geometries, unit, unit, st.floats(-1.0, 1.0), speed)
def test_a_timed_move_covers_the_translation_within_the_speed_asked(
    geometry: PtzGeometry, pan: float, tilt: float, zoom: float, top: float | None
) -> None:
    delta = PtzVector(pan, tilt, zoom)
    move = timed_move(delta, geometry, top)
    per_axis = rates(geometry)
    made = PtzVector(
        move.velocity.pan * per_axis.pan * move.seconds,
        move.velocity.tilt * per_axis.tilt * move.seconds,
        move.velocity.zoom * per_axis.zoom * move.seconds,
    )
    assert (made.pan, made.tilt, made.zoom) == pytest.approx((pan, tilt, zoom), abs=1e-9)
    assert move.seconds >= MIN_TIMED_MOVE
    limit = 1.0 if top is None else top
    assert max(abs(move.velocity.pan), abs(move.velocity.tilt), abs(move.velocity.zoom)) <= (
        limit + 1e-9
    )
    # Long moves run the slowest axis at the speed asked: no slower than needed.
    if travel_time(delta, geometry, top) > MIN_TIMED_MOVE:
        assert move.seconds == pytest.approx(travel_time(delta, geometry, top))


def test_travel_time_is_the_slowest_axis_at_its_rate() -> None:
    # 23.5 degrees of pan at 42.5 degrees a second, 5 of tilt at 12.5: the pan decides.
    delta = PtzVector(23.5 * 2 / 340, 5 * 2 / 100)
    assert travel_time(delta, AXIS_213) == pytest.approx(23.5 / 42.5)
    assert travel_time(delta, AXIS_213, speed=0.5) == pytest.approx(2 * 23.5 / 42.5)


@given(geometries, positions, velocities, st.floats(0.0, 100.0))
def test_the_estimate_follows_the_velocity_and_stops_at_the_end_stops(
    geometry: PtzGeometry, start: PtzVector, velocity: PtzVector, seconds: float
) -> None:
    after = advance(start, velocity, seconds, geometry)
    assert after == clamp(after)  # never past an end stop
    expected = start.pan + velocity.pan * geometry.pan_rate * 2 / geometry.pan_degrees * seconds
    assert after.pan == pytest.approx(min(1.0, max(-1.0, expected)))
    assert after.zoom == start.zoom
    assert advance(start, PtzVector(), seconds, geometry) == start
