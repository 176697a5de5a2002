"""The CSV files of `cloud-ingest sites import` and `devices import`, parsed and checked (pure).

A file is UTF-8 (a byte-order mark, as spreadsheets write it, is allowed) with a header line;
column names are case-insensitive, blank lines are skipped. Every problem is a `RowError` with the
file's line number, so all of them can be shown at once; the database checks (parents, gateways,
owners) take what the database holds as arguments and report the same way.

Sites (`path,level,name[,company][,plan_x,plan_y,plan_w,plan_h]`): `path` is the "/"-joined
segments from the district down, `level` must be the level of that depth (district, street,
community, grid, compound, building, unit), a parent must be in the file or the database. An empty
`company` takes the parent's. The plan columns, all four or none, place the site as a rectangle on
its parent's plan; with the columns present, empty cells clear the plan.

Devices (`id,gateway,kind,location[,labels][,plan_x,plan_y]`): `labels` is `key=value;key=value`,
`plan_x,plan_y` (both or none) the device's place on its compound's plan. A column left out keeps
what a known device has.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from cloud_ingest.gateways.ids import check_company, check_gateway_id
from cloud_ingest.registry.checks import (
    check_coordinate,
    check_device_id,
    check_kind,
    check_label,
    check_name,
    check_path,
    level_of,
    parent_of,
)
from core.site import LEVELS

SITE_COLUMNS: Final = ("path", "level", "name")
SITE_OPTIONAL: Final = ("company", "plan_x", "plan_y", "plan_w", "plan_h")
SITE_PLAN: Final = ("plan_x", "plan_y", "plan_w", "plan_h")
DEVICE_COLUMNS: Final = ("id", "gateway", "kind", "location")
DEVICE_OPTIONAL: Final = ("labels", "plan_x", "plan_y")
DEVICE_PLAN: Final = ("plan_x", "plan_y")

T = TypeVar("T")


@dataclass(frozen=True, slots=True, order=True)
class RowError:
    """A problem on line `line` of the file (1 is the header)."""

    line: int
    reason: str

    def render(self, source: str) -> str:
        """`FILE:LINE: reason`."""
        return f"{source}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class SiteRow:
    """One good line of a sites file."""

    line: int
    path: str
    level: str
    name: str
    company: str | None
    """`None`: take the parent's."""
    plan: dict[str, float] | None
    """`{"x", "y", "w", "h"}` on the parent's plan; `None` clears it (see `plan_given`)."""
    plan_given: bool
    """Whether the file has the plan columns (without them a known site keeps its plan)."""


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One good line of a devices file."""

    line: int
    id: str
    gateway: str
    kind: str
    location: str
    labels: dict[str, str] | None
    """`None`: the file has no labels column."""
    plan: tuple[float, float] | None
    plan_given: bool
    """Whether the file has the plan columns."""


@dataclass(slots=True)
class Parsed(Generic[T]):
    """The good rows of a file and the problems of the others."""

    rows: list[T] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    """Every well-formed key (site path, device id) the file names, good rows or not."""


def decode(data: bytes) -> str:
    """The text of a CSV file; `ValueError` if it is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"not UTF-8 text (byte {err.start + 1}); save the sheet as 'CSV UTF-8'"
        ) from None


def _records(
    text: str, required: Sequence[str], optional: Sequence[str], errors: list[RowError]
) -> Iterator[tuple[int, dict[str, str]]]:
    """The non-blank lines after the header as `{column: cell}`, with their line numbers."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    header: list[str] | None = None
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in cells]
                problems = _header_problems(header, required, optional)
                errors.extend(RowError(line, p) for p in problems)
                if problems:
                    return
                continue
            if len(cells) != len(header):
                errors.append(
                    RowError(line, f"{len(cells)} cells; the header has {len(header)} columns")
                )
                continue
            yield line, {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
    except csv.Error as err:
        errors.append(RowError(reader.line_num, f"not CSV: {err}"))
    if header is None:
        errors.append(RowError(1, f"no header line ({','.join(required)}...)"))


def _header_problems(
    header: Sequence[str], required: Sequence[str], optional: Sequence[str]
) -> list[str]:
    problems: list[str] = []
    missing = [c for c in required if c not in header]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    unknown = [c for c in header if c not in required and c not in optional]
    if unknown:
        problems.append(
            f"unknown column(s) {', '.join(map(repr, unknown))}; "
            f"the columns are {', '.join((*required, *optional))}"
        )
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    return problems


def _plan_columns(
    header: AbstractSet[str], columns: Sequence[str], line: int, errors: list[RowError]
) -> bool:
    """Whether the file has the plan columns: all of them (good) or none; some is an error."""
    present = [c for c in columns if c in header]
    if present and len(present) != len(columns):
        errors.append(RowError(line, f"the plan columns come together: {', '.join(columns)}"))
    return len(present) == len(columns)


def _numbers(record: Mapping[str, str], columns: Sequence[str]) -> list[float] | None:
    """The plan cells as finite numbers; `None` if all are empty."""
    cells = [record[c] for c in columns]
    if not any(cells):
        return None
    if not all(cells):
        raise ValueError(f"{', '.join(columns)}: fill all of them or none")
    values: list[float] = []
    for name, cell in zip(columns, cells, strict=True):
        try:
            number = float(cell)
        except ValueError:
            raise ValueError(f"{name}: {cell!r} is not a number") from None
        values.append(check_coordinate(number, name))
    return values


def _each(
    text: str,
    *,
    required: Sequence[str],
    optional: Sequence[str],
    plan: Sequence[str],
    parse: Callable[[int, dict[str, str], bool], T],
    key: Callable[[dict[str, str]], str | None],
) -> Parsed[T]:
    """Parse every record with `parse`; a `ValueError` is that line's error; repeats are errors."""
    parsed: Parsed[T] = Parsed()
    first_line: dict[str, int] = {}
    plan_given: bool | None = None
    for line, record in _records(text, required, optional, parsed.errors):
        if plan_given is None:
            plan_given = _plan_columns(set(record), plan, 1, parsed.errors)
        name = key(record)
        if name is not None:
            if name in first_line:
                parsed.errors.append(RowError(line, f"{name} repeats line {first_line[name]}"))
                continue
            first_line[name] = line
            parsed.keys.add(name)
        try:
            parsed.rows.append(parse(line, record, plan_given))
        except ValueError as err:
            parsed.errors.append(RowError(line, str(err)))
    if any(e.line == 1 for e in parsed.errors):
        parsed.rows.clear()
    return parsed


def _site_key(record: dict[str, str]) -> str | None:
    try:
        return check_path(record["path"])
    except ValueError:
        return None


def _site(line: int, record: dict[str, str], plan_given: bool) -> SiteRow:  # noqa: FBT001
    path = check_path(record["path"])
    level = record["level"].lower()
    if level not in LEVELS:
        raise ValueError(f"unknown level {record['level']!r}; one of {', '.join(LEVELS)}")
    if level != level_of(path):
        raise ValueError(
            f"{path} is a {level_of(path)} by its depth (the levels go {' / '.join(LEVELS)}), "
            f"not a {level}"
        )
    name = check_name(record["name"])
    company = record.get("company", "")
    plan = None
    if plan_given:
        numbers = _numbers(record, SITE_PLAN)
        if numbers is not None:
            if numbers[2] <= 0 or numbers[3] <= 0:
                raise ValueError("plan_w and plan_h must be positive")
            plan = dict(zip(("x", "y", "w", "h"), numbers, strict=True))
    return SiteRow(
        line,
        path,
        level,
        name,
        check_company(company) if company else None,
        plan,
        plan_given,
    )


def parse_sites(text: str) -> Parsed[SiteRow]:
    """The rows and row errors of a sites file (see the module docstring)."""
    return _each(
        text,
        required=SITE_COLUMNS,
        optional=SITE_OPTIONAL,
        plan=SITE_PLAN,
        parse=_site,
        key=_site_key,
    )


def check_parents(
    parsed: Parsed[SiteRow], stored: Mapping[str, str]
) -> tuple[dict[str, str], list[RowError]]:
    """Every good row's company (its own or its parent's) and the rows whose parent is unknown.

    `stored` maps the paths the database holds to their companies (at least the parents of the
    rows); a parent is known when the file names it (even on a bad line) or the database has it.
    """
    errors: list[RowError] = []
    companies: dict[str, str] = {}
    for row in sorted(parsed.rows, key=lambda r: r.path.count("/")):
        parent = parent_of(row.path)
        inherited = ""
        if parent is not None:
            if parent not in parsed.keys and parent not in stored:
                errors.append(
                    RowError(row.line, f"parent {parent} is neither in the file nor stored")
                )
                continue
            inherited = companies.get(parent, stored.get(parent, ""))
        companies[row.path] = row.company if row.company is not None else inherited
    return companies, errors


def _device_key(record: dict[str, str]) -> str | None:
    try:
        return check_device_id(record["id"])
    except ValueError:
        return None


def parse_labels(text: str) -> dict[str, str]:
    """`key=value;key=value` as a mapping (spaces around keys and values are dropped)."""
    labels: dict[str, str] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"label {item.strip()!r} is not key=value")
        key, value = check_label(key.strip(), value.strip())
        if key in labels:
            raise ValueError(f"label {key!r} given twice")
        labels[key] = value
    return labels


def _device(line: int, record: dict[str, str], plan_given: bool) -> DeviceRow:  # noqa: FBT001
    device_id = check_device_id(record["id"])
    try:
        gateway = check_gateway_id(record["gateway"])
    except ValueError as err:
        raise ValueError(f"gateway: {err}") from None
    kind = check_kind(record["kind"].lower())
    location = check_path(record["location"], allow_empty=True)
    labels = parse_labels(record["labels"]) if "labels" in record else None
    plan = None
    if plan_given:
        numbers = _numbers(record, DEVICE_PLAN)
        plan = None if numbers is None else (numbers[0], numbers[1])
    return DeviceRow(line, device_id, gateway, kind, location, labels, plan, plan_given)


def parse_devices(text: str) -> Parsed[DeviceRow]:
    """The rows and row errors of a devices file (see the module docstring)."""
    return _each(
        text,
        required=DEVICE_COLUMNS,
        optional=DEVICE_OPTIONAL,
        plan=DEVICE_PLAN,
        parse=_device,
        key=_device_key,
    )


def check_owners(
    rows: Sequence[DeviceRow], gateways: AbstractSet[str], owners: Mapping[str, str]
) -> list[RowError]:
    """Rows naming an unknown gateway, or a device that another gateway registered.

    `gateways` holds the stored gateway ids, `owners` the stored devices' gateways (at least
    those the rows name).
    """
    errors: list[RowError] = []
    for row in rows:
        if row.gateway not in gateways:
            errors.append(RowError(row.line, f"no gateway {row.gateway!r}; add it first"))
            continue
        owner = owners.get(row.id)
        if owner is not None and owner != row.gateway:
            errors.append(
                RowError(
                    row.line,
                    f"device {row.id!r} is registered to gateway {owner!r}, not {row.gateway!r}",
                )
            )
    return errors
