"""`overview.plan_svg` as data: the SVG is parsed (`xml.etree`) and its shapes, markers, colours,
attributes and escaping checked; and `overview.rollup`'s folding of grouped rows."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

import pytest

from cloud_ingest.overview import plan_svg
from cloud_ingest.overview.plan_svg import (
    OFFLINE_FILL,
    SEVERITY_FILL,
    PlanDevice,
    PlanInput,
    PlanSite,
    outline,
    render,
)
from cloud_ingest.overview.rollup import (
    AlarmCount,
    Counts,
    DeviceCount,
    GatewayCount,
    OrderCount,
    child_key,
    grid_key,
    here_key,
    ordered_states,
    roll_up,
    whole,
)

NS: Final = {"svg": plan_svg.SVG_NS}
LOTUS: Final = "d1/s1/c1/g1/lotus"
HOSTILE: Final = '1号楼</text><script>alert("x")</script>&amp;]]><!--'


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output


def devices(root: ET.Element) -> dict[str, ET.Element]:
    return {g.attrib["data-device-id"]: g for g in root.iterfind(".//svg:g[@data-device-id]", NS)}


def shape_of(group: ET.Element) -> ET.Element:
    (shape,) = [child for child in group if not child.tag.endswith("title")]
    return shape


def plan(*devs: PlanDevice, children: tuple[PlanSite, ...] = ()) -> PlanInput:
    site = PlanSite(LOTUS, "荷花苑", "compound", {"x": 0, "y": 0, "w": 240, "h": 160})
    return PlanInput(site, children, devs)


def test_each_device_is_a_marker_shaped_by_kind_and_coloured_by_its_worst_alarm() -> None:
    root = parse(
        render(
            plan(
                PlanDevice("smoke-1", "smoke", LOTUS, 30, 30, "critical", 2),
                PlanDevice("manhole-1", "manhole", LOTUS, 110, 60, "warning", 1),
                PlanDevice("bin-1", "bin", LOTUS, 95, 75, "info", 1),
                PlanDevice("fence-1", "perimeter", LOTUS, 120, 0),
                PlanDevice("panel-1", "fire_panel", LOTUS, 5, 5, "critical", 1, offline=True),
                PlanDevice("meter-1", "meter", LOTUS, 200, 150, "bogus", 1),
                PlanDevice("level-1", "level", LOTUS, 210, 150, "major", 1),
            )
        )
    )
    assert root.tag == f"{{{plan_svg.SVG_NS}}}svg"
    found = devices(root)
    expected = {  # id: (tag, marker, fill, data-severity, data-offline)
        "smoke-1": ("circle", "circle", SEVERITY_FILL["critical"], "critical", "false"),
        "manhole-1": ("rect", "square", SEVERITY_FILL["warning"], "warning", "false"),
        "bin-1": ("polygon", "triangle", SEVERITY_FILL["info"], "info", "false"),
        "fence-1": ("polygon", "diamond", SEVERITY_FILL["none"], "none", "false"),
        "panel-1": ("polygon", "pentagon", OFFLINE_FILL, "critical", "true"),
        "meter-1": ("polygon", "hexagon", SEVERITY_FILL["info"], "info", "false"),
        "level-1": ("polygon", "hexagon", SEVERITY_FILL["warning"], "warning", "false"),
    }
    assert set(found) == set(expected)
    for device_id, (tag, marker, fill, severity, offline) in expected.items():
        group = found[device_id]
        shape = shape_of(group)
        assert shape.tag == f"{{{plan_svg.SVG_NS}}}{tag}", device_id
        assert group.attrib["data-marker"] == marker
        assert shape.attrib["fill"] == fill, device_id
        assert group.attrib["data-severity"] == severity
        assert group.attrib["data-offline"] == offline
        assert group.attrib["tabindex"] == "0"
        title = group.find("svg:title", NS)
        assert title is not None
        assert title.text is not None
        assert title.text.startswith(device_id)
    assert found["smoke-1"].find("svg:title", NS).text == (  # type: ignore[union-attr]
        "smoke-1 (smoke) - critical: 2 open alarms"
    )
    assert "gateway offline" in found["panel-1"].attrib["aria-label"]
    circle = shape_of(found["smoke-1"])
    assert (circle.attrib["cx"], circle.attrib["cy"]) == ("30", "30")
    # the worst are drawn last (on top); offline first
    order = [g.attrib["data-device-id"] for g in root.iterfind(".//svg:g[@data-device-id]", NS)]
    assert order[0] == "panel-1"
    assert order[-1] == "smoke-1"


def test_children_are_drawn_as_their_shapes_and_labelled() -> None:
    children = (
        PlanSite(f"{LOTUS}/b1", "1号楼", "building", {"x": 20, "y": 20, "w": 60, "h": 30}),
        PlanSite(f"{LOTUS}/b2", "2号楼", "building", {"points": [[20, 90], [80, 90], [50, 130]]}),
        PlanSite(f"{LOTUS}/b3", "unplaced", "building", None),
        PlanSite(f"{LOTUS}/b4", "broken", "building", {"x": 1, "y": 1, "w": -5, "h": 2}),
    )
    root = parse(render(plan(children=children)))
    groups = {g.attrib["data-site-path"]: g for g in root.iterfind(".//svg:g[@class='site']", NS)}
    assert set(groups) == {f"{LOTUS}/b1", f"{LOTUS}/b2"}
    b1 = groups[f"{LOTUS}/b1"]
    polygon = b1.find("svg:polygon", NS)
    assert polygon is not None
    assert polygon.attrib["points"] == "20,20 80,20 80,50 20,50"
    label = b1.find("svg:text", NS)
    assert label is not None
    assert label.text == "1号楼"
    assert label.attrib["x"] == "50"  # centred above the building, clear of its devices
    assert 10 < float(label.attrib["y"]) < 20
    b2 = groups[f"{LOTUS}/b2"].find("svg:polygon", NS)
    assert b2 is not None
    assert b2.attrib["points"] == "20,90 80,90 50,130"
    # the compound's own outline and a dark background; the viewBox spans all with a margin
    outline_el = root.find("svg:polygon[@class='plan-outline']", NS)
    assert outline_el is not None
    assert outline_el.attrib["points"] == "0,0 240,0 240,160 0,160"
    background = root.find("svg:rect[@class='plan-background']", NS)
    assert background is not None
    assert background.attrib["fill"] == plan_svg.BACKGROUND
    assert [float(v) for v in root.attrib["viewBox"].split()] == [-12, -12, 264, 184]


def test_the_view_box_covers_devices_outside_the_outline() -> None:
    root = parse(render(plan(PlanDevice("far", "smoke", LOTUS, 400, -100))))
    x, y, w, h = (float(v) for v in root.attrib["viewBox"].split())
    assert (x < 0, y < -100, x + w > 400, y + h > 160) == (True, True, True, True)


def test_an_empty_plan_is_still_a_plan() -> None:
    root = parse(render(PlanInput(PlanSite("d1", "", "district", None))))
    assert root.attrib["viewBox"] == "0 0 100 100"
    assert devices(root) == {}
    assert root.find("svg:title", NS).text == "d1"  # type: ignore[union-attr]


def test_names_and_ids_cannot_inject_markup() -> None:
    hostile_child = PlanSite(f"{LOTUS}/b1", HOSTILE + "\x00\x07\ufffe", "building", {
        "x": 20, "y": 20, "w": 60, "h": 30
    })  # fmt: skip
    site = PlanSite(LOTUS, HOSTILE, "compound", None)
    device = PlanDevice('d"><script>x</script>', "<smoke>", LOTUS, 1, 1, "critical", 1)
    svg = render(PlanInput(site, (hostile_child,), (device,)))
    root = parse(svg)  # well-formed, whatever the names held
    assert all(not el.tag.endswith("script") for el in root.iter())
    assert "<script" not in svg
    assert not {"\x00", "\x07", "\ufffe"} & set(svg)
    label = root.find(".//svg:g[@class='site']/svg:text", NS)
    assert label is not None
    assert label.text == HOSTILE  # shown as text, exactly, without the control characters
    assert root.find("svg:title", NS).text == HOSTILE  # type: ignore[union-attr]
    (marker,) = devices(root).values()
    assert marker.attrib["data-device-id"] == 'd"><script>x</script>'
    assert marker.attrib["data-kind"] == "<smoke>"


def test_no_external_reference_or_script_in_the_document() -> None:
    svg = render(plan(PlanDevice("s", "smoke", LOTUS, 1, 1)))
    root = parse(svg)
    for element in root.iter():
        assert not element.tag.endswith(("script", "image", "use", "foreignObject", "style"))
        for name, value in element.attrib.items():
            assert "href" not in name
            assert "url(" not in value
            assert not name.startswith("on")
    assert "http" not in svg.replace(plan_svg.SVG_NS, "")


@pytest.mark.parametrize(
    "stored",
    [
        None,
        {},
        {"x": 0, "y": 0, "w": 0, "h": 5},
        {"x": "1", "y": 0, "w": 5, "h": 5},
        {"x": float("nan"), "y": 0, "w": 5, "h": 5},
        {"x": True, "y": 0, "w": 5, "h": 5},
        {"points": [[0, 0], [1, 1]]},
        {"points": [[0, 0], [1, 1], [2]]},
        {"points": [[0, 0], [1, 1], [2, float("inf")]]},
        {"points": "0,0 1,1 2,2"},
    ],
)
def test_a_malformed_stored_shape_is_left_out(stored: dict[str, object] | None) -> None:
    assert outline(stored) is None


def test_non_finite_device_positions_are_left_out() -> None:
    root = parse(render(plan(PlanDevice("nan", "smoke", LOTUS, float("nan"), 1))))
    assert devices(root) == {}


# --- roll-ups --------------------------------------------------------------------------------------


def test_rows_fold_under_children_grids_the_node_itself_and_the_total() -> None:
    counts = Counts(
        alarms=(
            AlarmCount("d1/s1/c1/g1/lotus/b1", "critical", 2),
            AlarmCount("d1/s1/c1/g1/lotus", "warning", 1),
            AlarmCount("d1/s1/c1/g2/pine", "bogus", 3),  # unknown: counted as info
            AlarmCount("d1/s1/c1/g2/pine", "major", 1),  # another name of warning
            AlarmCount("d1/s1", "critical", 1),  # at the node itself
        ),
        devices=(
            DeviceCount("d1/s1/c1/g1/lotus/b1", 3, "online", 4),
            DeviceCount("d1/s1/c1/g1/lotus", None, "offline", 2),
            DeviceCount("d1/s1/c2/g1/oak", 1, "offline", 1),
        ),
        gateways=(
            GatewayCount("d1/s1/c1/g1/lotus", "online", 1),
            GatewayCount("d1/s1/c2", "weird", 1),
        ),
        orders=(
            OrderCount("d1/s1/c1/g1/lotus", "NEW", 2, 1, 0),
            OrderCount("d1/s1/c2/g1/oak", "REWORK", 1, 0, 1),
        ),
    )
    children = roll_up(counts, child_key("d1/s1"))
    assert set(children) == {"d1/s1/c1", "d1/s1/c2"}
    c1, c2 = children["d1/s1/c1"], children["d1/s1/c2"]
    assert c1.alarms == {"critical": 2, "warning": 2, "info": 3}
    assert c1.devices == {"critical": 4, "none": 2}
    assert c1.devices_offline == 2
    assert c1.gateways == {"online": 1}
    assert (c1.orders, c1.breached, c1.escalated) == ({"NEW": 2}, 1, 0)
    assert c2.devices == {"info": 1}
    assert c2.gateways == {"unknown": 1}
    assert (c2.orders, c2.escalated) == ({"REWORK": 1}, 1)
    assert roll_up(counts, here_key("d1/s1"))[""].alarms == {"critical": 1}
    grids = roll_up(counts, grid_key)
    assert set(grids) == {"d1/s1/c1/g1", "d1/s1/c1/g2", "d1/s1/c2/g1"}
    assert grids["d1/s1/c1/g2"].alarms == {"info": 3, "warning": 1}
    assert sum(roll_up(counts, whole)[""].alarms.values()) == 8
    assert roll_up(counts, child_key(""))["d1"].alarms["critical"] == 3


def test_open_states_are_listed_in_loop_order_with_zeros() -> None:
    states = ordered_states({"REWORK": 1, "NEW": 2})
    assert list(states)[:3] == ["NEW", "ACCEPTED", "DISPATCHED"]
    assert (states["NEW"], states["REWORK"], states["ACCEPTED"]) == (2, 1, 0)
    assert "CLOSED" not in states
