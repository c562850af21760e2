"""The catalogue: shipped defaults, editions by date, and clear errors for a bad operator file."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.domain.catalogue import Catalogue, load_catalogue, parse_catalogue
from ledger.domain.errors import CatalogueError, NotAuthorised, NotInCatalogue


def raw_default() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (Path(__file__).resolve().parents[2] / "ledger" / "data" / "catalogue.json").read_text("utf-8")
    )
    return data


def test_the_shipped_catalogue_covers_every_key_domain_the_policy_names(catalogue: Catalogue) -> None:
    edition = catalogue.latest
    for domain in (
        "food_drug",
        "work_safety",
        "taxation",
        "judicial",
        "education_examinations",
        "volunteer_service",
    ):
        assert domain in edition.domains
    assert {c.kind for c in edition.categories.values()} == {"adverse", "positive", "neutral", "designation"}
    assert edition.measures_for("black")
    assert edition.measures_for("red")


def test_publicity_defaults_follow_the_2026_national_rules(catalogue: Catalogue) -> None:
    assert dict(catalogue.latest.publicity) == {"minor": (0, 3), "general": (3, 12), "serious": (12, 36)}


def test_the_edition_in_force_is_chosen_by_date(tmp_path: Path) -> None:
    data = raw_default()
    later = copy.deepcopy(data["editions"][0])
    later.update(edition="2027-01", effective_from="2027-01-01")
    later["publicity"]["serious"] = {"min_months": 12, "max_months": 24}
    data["editions"].append(later)
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    catalogue = load_catalogue(path)
    assert catalogue.edition_at(date(2026, 12, 31)).edition == "2026-04"
    assert catalogue.edition_at(date(2027, 1, 1)).publicity["serious"] == (12, 24)
    with pytest.raises(NotInCatalogue, match="no catalogue edition is in force on 2026-03-31"):
        catalogue.edition_at(date(2026, 3, 31))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format=2), "format: expected 1, got 2"),
        (
            lambda d: d["editions"][0]["categories"]["tax_evasion"].update(kind="awful"),
            "categories.tax_evasion.kind: expected one of",
        ),
        (
            lambda d: d["editions"][0]["departments"]["tax_bureau"]["may_file"]["categories"].append("nope"),
            "category 'nope' is not defined",
        ),
        (
            lambda d: d["editions"][0]["publicity"]["minor"].update(max_months=-1),
            "publicity.minor: expected 0 <= min_months <= max_months",
        ),
        (
            lambda d: d["editions"][0].update(effective_from="April"),
            "effective_from: expected a date YYYY-MM-DD, got 'April'",
        ),
        (
            lambda d: d["editions"][0]["measures"][0].update(implementing_departments=["ghost"]),
            "department 'ghost' is not defined",
        ),
    ],
)
def test_a_bad_catalogue_file_fails_at_start_naming_the_place(mutate: Any, message: str) -> None:
    data = raw_default()
    mutate(data)
    with pytest.raises(CatalogueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_catalogue(data, origin="ops.json")


def test_a_missing_or_malformed_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="does not exist"):
        load_catalogue(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(CatalogueError, match="is not valid JSON"):
        load_catalogue(broken)


def test_departments_are_held_to_what_they_are_registered_for(catalogue: Catalogue) -> None:
    edition = catalogue.latest
    edition.check_may_file("tax_bureau", "tax_evasion", "taxation")
    with pytest.raises(NotAuthorised) as excinfo:
        edition.check_may_file("tax_bureau", "tax_evasion", "education_examinations")
    assert excinfo.value.field == "record.domain"
    with pytest.raises(NotAuthorised):
        edition.check_may_designate("education", "black")
