"""BCP-47 tags and SPDX licenses."""

from __future__ import annotations

import pytest

from nlmr.languages import check_language
from nlmr.licenses import HF_TO_SPDX, SPDX_TO_HF, check_license, from_hf, to_hf


@pytest.mark.parametrize(
    "tag",
    [
        "nb",
        "nn",
        "se",
        "sma",
        "smj",
        "smn",
        "sms",
        "fo",
        "is",
        "kl",
        "fi",
        "sv",
        "da",
        "en",
        "sv-FI",
        "se-NO",
        "nb-NO",
        "fkv",
        "yi-Latn",
    ],
)
def test_nordic_tags_are_valid_and_canonical(tag: str) -> None:
    verdict = check_language(tag)
    assert verdict.normalized == tag and verdict.error is None and verdict.warning is None


@pytest.mark.parametrize(
    "tag, norm",
    [
        ("nob", "nb"),
        ("nno", "nn"),
        ("NB", "nb"),
        ("sme", "se"),
        ("swe", "sv"),
        ("en-us", "en-US"),
        ("nb_NO", "nb-NO"),
    ],
)
def test_non_canonical_tags_warn_with_canonical_form(tag: str, norm: str) -> None:
    verdict = check_language(tag)
    assert verdict.normalized == norm and verdict.warning and norm in verdict.warning


def test_bare_no_warns() -> None:
    verdict = check_language("no")
    assert verdict.error is None and verdict.warning and "nb" in verdict.warning


@pytest.mark.parametrize("tag", ["xx-foo", "english", "und", "mul", ""])
def test_invalid_tags(tag: str) -> None:
    assert check_language(tag).error


def test_spdx_hf_map_is_a_bijection_of_valid_ids() -> None:
    assert len(HF_TO_SPDX) == len(SPDX_TO_HF)
    for spdx in SPDX_TO_HF:
        verdict = check_license(spdx)
        assert verdict.error is None and verdict.normalized == spdx, spdx


@pytest.mark.parametrize("spdx", ["Apache-2.0", "CC-BY-4.0", "MIT", "ODbL-1.0", "GPL-3.0-only"])
def test_hf_export_round_trips(spdx: str) -> None:
    hf = to_hf(spdx, None, None)
    assert from_hf(hf["license"], hf.get("license_name"), hf.get("license_link"))[0] == spdx


def test_compound_and_licenseref_export_as_other() -> None:
    assert to_hf("MIT OR Apache-2.0", None, None) == {
        "license": "other",
        "license_name": "mit-or-apache-2.0",
    }
    assert to_hf("LicenseRef-NCC", None, "https://x.org") == {
        "license": "other",
        "license_name": "ncc",
        "license_link": "https://x.org",
    }
    assert check_license("LicenseRef-NCC").refs == ("LicenseRef-NCC",)
