"""A site's plan as SVG, drawn from the site data alone (pure: no I/O, no clock, no map tiles).

The plan of a site (a compound, normally) is its own coordinate system: its `plan` in the registry
is its shape on its parent's plan (`{"x", "y", "w", "h"}`, as the CSV import stores it, or a
polygon `{"points": [[x, y], ...]}`), so on its own plan it spans `0..w` by `0..h`, `y` pointing
down (north at the top). Its children (buildings; a manhole zone, a bin area, a perimeter zone
kept as sites) are drawn as their shapes, labelled with their names; its devices as markers at
`plan_x`, `plan_y`, shaped by kind and filled by their worst open alarm:

| marker | kind |  | fill | worst open alarm |
| --- | --- | --- | --- | --- |
| circle | smoke | | red | critical |
| square | manhole | | amber | warning |
| triangle | bin | | blue | info |
| diamond | perimeter | | green | none |
| pentagon | fire or alarm panel | | grey | the device's gateway is offline |
| hexagon | any other | | | |

Each marker is a `<g class="device">` with `data-device-id`, `data-kind`, `data-severity`
(`critical`, `warning`, `info`, `none`), `data-offline` and `data-open-alarms`, a `<title>` (the
tooltip) and `tabindex="0"`, so a page can make it clickable; the worst are drawn last (on top).
Each child shape is a `<g class="site" data-site-path=...>`. The colours suit a dark theme (a dark
background, light lines and text) and are presentation attributes, which a page's CSS overrides.

The document is built as an element tree and serialised by `xml.etree`, so every name, id and
kind is escaped; characters XML cannot carry (control characters, lone surrogates) are dropped.
Shapes and points that are not finite numbers are left out. The SVG has no external reference,
no script and no style sheet; the `viewBox` spans everything drawn, with a margin.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cloud_ingest.overview.rollup import severity_of

SVG_NS: Final = "http://www.w3.org/2000/svg"
SEVERITY_FILL: Final = {
    "critical": "#ef4444",
    "warning": "#f59e0b",
    "info": "#3b82f6",
    "none": "#22c55e",
}
"""A device's fill by its worst open alarm (an unknown severity is drawn as `info`)."""
OFFLINE_FILL: Final = "#6b7280"
"""A device behind an offline gateway: its alarms cannot be trusted, so it is grey."""
SEVERITY_ORDER: Final = ("none", "info", "warning", "critical")
"""Drawing order: the worst last, on top."""
MARKERS: Final = {
    "smoke": "circle",
    "manhole": "square",
    "bin": "triangle",
    "perimeter": "diamond",
    "fire_panel": "pentagon",
    "alarm_panel": "pentagon",
}
"""The marker of a device kind; any other kind is a hexagon."""
BACKGROUND: Final = "#0b1220"
OUTLINE: Final = "#475569"
SITE_FILL: Final = "#1e293b"
SITE_STROKE: Final = "#94a3b8"
TEXT_FILL: Final = "#e2e8f0"
MARKER_STROKE: Final = "#0f172a"
LABEL_SIZE: Final = 3.0
"""A site's label height, in hundredths of the plan's larger side."""
LABEL_GAP: Final = 0.8
"""The gap between a site's top edge and its label's baseline, in the same hundredths."""
EMPTY_EXTENT: Final = 100.0
"""The size of a plan with nothing to draw."""
MARGIN: Final = 0.05
"""The margin around what is drawn, as a share of the larger side."""

_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class PlanSite:
    """A site as the plan needs it: its `plan` is its shape on its parent's plan (or none)."""

    path: str
    name: str
    level: str
    plan: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class PlanDevice:
    """A device placed on the plan, with its worst open alarm (`none`) and its gateway's state."""

    id: str
    kind: str
    location: str
    x: float
    y: float
    severity: str = "none"
    open_alarms: int = 0
    offline: bool = False


@dataclass(frozen=True, slots=True)
class PlanInput:
    """What one plan shows: the site, its children's shapes and its devices."""

    site: PlanSite
    children: Sequence[PlanSite] = ()
    devices: Sequence[PlanDevice] = ()


Point = tuple[float, float]


def xml_text(text: str) -> str:
    """`text` without the characters XML 1.0 cannot carry (escaping is the serialiser's)."""
    return _NOT_XML.sub("", text)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def outline(plan: Mapping[str, Any] | None) -> list[Point] | None:
    """The corners of a stored plan shape; `None` when it is none of the shapes (or not finite).

    A rectangle is `x, y, w, h` (positive sizes), a polygon at least three `points`.
    """
    if not isinstance(plan, Mapping):
        return None
    if "points" in plan:
        return _polygon(plan["points"])
    x, y, w, h = (_number(plan.get(k)) for k in ("x", "y", "w", "h"))
    if x is None or y is None or w is None or h is None or w <= 0 or h <= 0:
        return None
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]


def _polygon(points: object) -> list[Point] | None:
    """The corners of a stored polygon, `[[x, y], ...]`, at least a triangle."""
    if not isinstance(points, list) or len(points) < 3:  # noqa: PLR2004 - a triangle at least
        return None
    corners: list[Point] = []
    for point in points:
        pair = point if isinstance(point, list | tuple) and len(point) == 2 else (None, None)  # noqa: PLR2004
        x, y = _number(pair[0]), _number(pair[1])
        if x is None or y is None:
            return None
        corners.append((x, y))
    return corners


def own_outline(plan: Mapping[str, Any] | None) -> list[Point] | None:
    """The site's own shape on its own plan: its stored shape moved to start at `0, 0`."""
    corners = outline(plan)
    if corners is None:
        return None
    left = min(x for x, _ in corners)
    top = min(y for _, y in corners)
    return [(x - left, y - top) for x, y in corners]


def _fmt(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in {"", "-0"} else text


def _points(corners: Sequence[Point]) -> str:
    return " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in corners)


def _label_at(corners: Sequence[Point], unit: float) -> Point:
    """Where a shape's name stands: centred just above its top edge, clear of its devices."""
    xs = [x for x, _ in corners]
    return (min(xs) + max(xs)) / 2, min(y for _, y in corners) - unit * LABEL_GAP


def _bounds(points: Sequence[Point]) -> tuple[float, float, float, float]:
    """`x, y, width, height` around `points` with the margin (a default square without any)."""
    if not points:
        return 0.0, 0.0, EMPTY_EXTENT, EMPTY_EXTENT
    left, right = min(x for x, _ in points), max(x for x, _ in points)
    top, bottom = min(y for _, y in points), max(y for _, y in points)
    side = max(right - left, bottom - top, 1.0)
    pad = side * MARGIN
    return left - pad, top - pad, right - left + 2 * pad, bottom - top + 2 * pad


def _severity(device: PlanDevice) -> str:
    """The device's severity as drawn: `none` or a known one (`rollup.severity_of`)."""
    return device.severity if device.severity == "none" else severity_of(device.severity)


def fill_of(device: PlanDevice) -> str:
    """A device's fill: grey behind an offline gateway, else by its worst open alarm."""
    return OFFLINE_FILL if device.offline else SEVERITY_FILL[_severity(device)]


def _drawing_order(device: PlanDevice) -> tuple[int, str]:
    """Offline devices first, then the others from no alarm to critical (drawn last, on top)."""
    rank = 0 if device.offline else 1 + SEVERITY_ORDER.index(_severity(device))
    return rank, device.id


def tooltip(device: PlanDevice) -> str:
    """The device's tooltip: id, kind, and its alarms or its gateway's outage."""
    kind = device.kind or "device"
    if device.offline:
        state = "gateway offline"
    elif device.open_alarms > 0:
        noun = "alarm" if device.open_alarms == 1 else "alarms"
        state = f"{_severity(device)}: {device.open_alarms} open {noun}"
    else:
        state = "no open alarm"
    return f"{device.id} ({kind}) - {state}"


def _add(
    parent: ET.Element, tag: str, attrs: Mapping[str, str], text: str | None = None
) -> ET.Element:
    """A child element `tag` of `parent` with `attrs` and `text` (escaped when serialised)."""
    element = ET.SubElement(parent, tag, dict(attrs))
    if text is not None:
        element.text = text
    return element


def _regular(centre: Point, r: float, sides: int) -> str:
    """The corners of a regular polygon of `sides` around `centre`, one corner at the top."""
    cx, cy = centre
    turns = [-math.pi / 2 + 2 * math.pi * i / sides for i in range(sides)]
    return _points([(cx + r * math.cos(t), cy + r * math.sin(t)) for t in turns])


_SIDES: Final = {"triangle": (3, 1.3), "diamond": (4, 1.25), "pentagon": (5, 1.15)}
"""Sides and size (as a share of the radius) of the polygon markers; others are hexagons."""


def _marker(
    group: ET.Element, kind: str, centre: Point, r: float, style: Mapping[str, str]
) -> None:
    """The shape of a `kind` marker centred on `centre`, about `2 r` across."""
    shape = MARKERS.get(kind, "hexagon")
    x, y = centre
    if shape == "circle":
        _add(group, "circle", {"cx": _fmt(x), "cy": _fmt(y), "r": _fmt(r), **style})
    elif shape == "square":
        side = r * 1.7
        box = {"x": _fmt(x - side / 2), "y": _fmt(y - side / 2)}
        _add(group, "rect", {**box, "width": _fmt(side), "height": _fmt(side), **style})
    else:
        sides, size = _SIDES.get(shape, (6, 1.1))
        _add(group, "polygon", {"points": _regular(centre, r * size, sides), **style})
    group.set("data-marker", shape)


def _site(parent: ET.Element, child: PlanSite, corners: Sequence[Point], unit: float) -> None:
    """A child site's shape, labelled with its name above it."""
    label = xml_text(child.name or child.path.rsplit("/", 1)[-1])
    group = _add(
        parent,
        "g",
        {
            "class": "site",
            "data-site-path": xml_text(child.path),
            "data-level": xml_text(child.level),
        },
    )
    _add(group, "title", {}, label)
    shape = {"points": _points(corners), "fill": SITE_FILL, "stroke": SITE_STROKE}
    _add(group, "polygon", {**shape, "stroke-width": _fmt(unit * 0.3)})
    x, y = _label_at(corners, unit)
    font = {"font-size": _fmt(unit * LABEL_SIZE), "font-family": "sans-serif", "fill": TEXT_FILL}
    halo = {"stroke": BACKGROUND, "stroke-width": _fmt(unit * 0.6), "paint-order": "stroke"}
    _add(
        group, "text", {"x": _fmt(x), "y": _fmt(y), "text-anchor": "middle", **font, **halo}, label
    )


def _device(parent: ET.Element, device: PlanDevice, unit: float) -> None:
    """A device's marker with its data attributes and tooltip."""
    severity = _severity(device)
    tip = xml_text(tooltip(device))
    group = _add(
        parent,
        "g",
        {
            "class": f"device severity-{severity}" + (" offline" if device.offline else ""),
            "data-device-id": xml_text(device.id),
            "data-kind": xml_text(device.kind),
            "data-severity": severity,
            "data-offline": "true" if device.offline else "false",
            "data-open-alarms": str(max(device.open_alarms, 0)),
            "tabindex": "0",
            "aria-label": tip,
        },
    )
    _add(group, "title", {}, tip)
    style = {"fill": fill_of(device), "stroke": MARKER_STROKE, "stroke-width": _fmt(unit * 0.3)}
    _marker(group, device.kind, (device.x, device.y), unit * 1.6, style)


def render(plan: PlanInput) -> str:
    """The SVG document of `plan` (text, no XML declaration, so it also inlines into HTML)."""
    own = own_outline(plan.site.plan)
    shapes = [(child, c) for child in plan.children if (c := outline(child.plan)) is not None]
    placed = [d for d in plan.devices if math.isfinite(d.x) and math.isfinite(d.y)]
    everything = [*(own or []), *(p for _, c in shapes for p in c), *((d.x, d.y) for d in placed)]
    left, top, width, height = _bounds(everything)
    unit = max(width, height) / 100
    if shapes:  # room for the labels above the shapes
        tops = [_label_at(c, unit) for _, c in shapes]
        everything += [(x, y - unit * LABEL_SIZE) for x, y in tops]
        left, top, width, height = _bounds(everything)
    name = xml_text(plan.site.name or plan.site.path)
    svg = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "viewBox": " ".join(_fmt(v) for v in (left, top, width, height)),
            "preserveAspectRatio": "xMidYMid meet",
            "role": "img",
            "class": "site-plan",
            "aria-label": name,
            "data-site-path": xml_text(plan.site.path),
        },
    )
    _add(svg, "title", {}, name)
    frame = {"x": _fmt(left), "y": _fmt(top), "width": _fmt(width), "height": _fmt(height)}
    _add(svg, "rect", {**frame, "fill": BACKGROUND, "class": "plan-background"})
    if own is not None:
        dashes = f"{_fmt(unit * 1.5)} {_fmt(unit)}"
        line = {"stroke": OUTLINE, "stroke-width": _fmt(unit * 0.4), "stroke-dasharray": dashes}
        _add(
            svg,
            "polygon",
            {"points": _points(own), "fill": "none", "class": "plan-outline", **line},
        )
    sites = _add(svg, "g", {"class": "sites"})
    for child, corners in shapes:
        _site(sites, child, corners, unit)
    markers = _add(svg, "g", {"class": "devices"})
    for device in sorted(placed, key=_drawing_order):
        _device(markers, device, unit)
    return ET.tostring(svg, encoding="unicode")
