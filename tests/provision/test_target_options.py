"""``TargetOptions``: a target's options model, and the one-line errors ``checked`` makes of it.

A validator's own message names the flag and the fix, so it is kept word for word; pydantic's
own checks (types, required fields, unknown keys) become ``Invalid --flag: reason.``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import ValidationInfo, field_validator, model_validator

from provision.errors import InvalidInputError
from provision.targets.base import TargetOptions, origin


class SampleOptions(TargetOptions):
    """A target's options as every target declares them: fields, validators, one internal."""

    region: str
    retention_days: int = 30
    subnet_ids: tuple[str, ...] = ()
    tenant: str | None = None
    internal: ClassVar[frozenset[str]] = frozenset({"tenant"})

    @field_validator("region")
    @classmethod
    def _region(cls, value: str, info: ValidationInfo) -> str:
        if not value.startswith("eu-"):
            raise ValueError(f"Region '{value}'{origin(info)} is not in Europe; use eu-west-1.")
        flavor = (info.context or {}).get("flavor")
        if flavor == "west-only" and not value.startswith("eu-west-"):
            raise ValueError(f"'{flavor}' pools need a west region, not '{value}'.")
        return value

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: int, info: ValidationInfo) -> int:
        if value not in (1, 30, 90):
            raise ValueError(f"Invalid --retention-days {value}{origin(info)}: use 1, 30 or 90.")
        return value

    @model_validator(mode="after")
    def _subnets_need_a_west_region(self) -> SampleOptions:
        if self.subnet_ids and not self.region.startswith("eu-west-"):
            raise AssertionError("--subnet-ids needs an eu-west region.")
        return self


def checked(values: dict[str, Any], sources: dict[str, str] | None = None, **context: Any) -> str:
    """The message of the ``InvalidInputError`` that ``checked`` raises for ``values``."""
    with pytest.raises(InvalidInputError) as info:
        SampleOptions.checked(values, sources, **context)
    err = info.value
    assert "\n" not in err.message
    assert err.exit_code == 2
    # Nothing of pydantic's error is chained on: the one line is the whole story.
    assert err.__cause__ is None and err.__suppress_context__
    return err.message


def test_valid_values_come_back_as_the_model():
    opts = SampleOptions.checked({"region": "eu-west-1", "subnet_ids": ["subnet-1"]})
    assert opts == SampleOptions(region="eu-west-1", subnet_ids=("subnet-1",))
    assert SampleOptions.checked({"region": "eu-north-1"}, {"region": "--region"}).region == (
        "eu-north-1"
    )


def test_keys_are_the_fields_but_the_internal_ones():
    assert SampleOptions.keys() == {"region", "retention_days", "subnet_ids"}
    assert TargetOptions.keys() == frozenset()


def test_a_validators_message_is_kept_verbatim_with_where_the_value_came_from():
    assert checked({"region": "us-east-1"}, {"region": "--region"}) == (
        "Region 'us-east-1' (from --region) is not in Europe; use eu-west-1."
    )
    assert checked({"region": "us-east-1"}, {"region": "AWS_REGION"}) == (
        "Region 'us-east-1' (from AWS_REGION) is not in Europe; use eu-west-1."
    )
    # No source known: no "(from ...)".
    assert checked({"region": "us-east-1"}) == (
        "Region 'us-east-1' is not in Europe; use eu-west-1."
    )
    assert checked({"region": "eu-west-1", "retention_days": 7}, {"retention_days": "--x"}) == (
        "Invalid --retention-days 7 (from --x): use 1, 30 or 90."
    )


def test_validators_read_the_context_they_are_given():
    assert SampleOptions.checked({"region": "eu-north-1"}, flavor="any").region == "eu-north-1"
    assert checked({"region": "eu-north-1"}, flavor="west-only") == (
        "'west-only' pools need a west region, not 'eu-north-1'."
    )


def test_a_model_validators_message_is_kept_verbatim_too():
    # An AssertionError counts like a ValueError: pydantic reports both as the validator's own.
    assert checked({"region": "eu-north-1", "subnet_ids": ["subnet-1"]}) == (
        "--subnet-ids needs an eu-west region."
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"region": "eu-west-1", "retention_days": "many"},
            "Invalid --retention-days: Input should be a valid integer, unable to parse string "
            "as an integer.",
        ),
        ({"region": 3}, "Invalid --region: Input should be a valid string."),
        (
            {"region": "eu-west-1", "subnet_ids": 5},
            "Invalid --subnet-ids: Input should be a valid tuple.",
        ),
        ({}, "Invalid --region: Field required."),
        (
            {"region": "eu-west-1", "vpc_id": "vpc-1"},
            "Invalid --vpc-id: Extra inputs are not permitted.",
        ),
    ],
)
def test_a_plain_pydantic_error_becomes_invalid_flag_reason(values, message):
    assert checked(values, {"retention_days": "--retention-days"}) == message


def test_a_type_error_never_echoes_the_value():
    # The value could be anything a user pasted, a token included: only the reason is shown.
    message = checked({"region": "eu-west-1", "retention_days": "pnu_s3cr3t"})
    assert message.startswith("Invalid --retention-days: ")
    assert "pnu_s3cr3t" not in message


def test_only_the_first_problem_is_reported():
    message = checked({"region": "us-east-1", "retention_days": 7})
    assert message == "Region 'us-east-1' is not in Europe; use eu-west-1."


def test_an_invalid_input_error_raised_by_a_validator_passes_through():
    # Targets may raise the tool's own error from a validator (GCP's region check does).
    class Strict(TargetOptions):
        region: str

        @model_validator(mode="after")
        def _known(self) -> Strict:
            raise InvalidInputError(f"Region '{self.region}' has no Cloud Run; did you mean x?")

    with pytest.raises(InvalidInputError) as info:
        Strict.checked({"region": "mars"})
    assert info.value.message == "Region 'mars' has no Cloud Run; did you mean x?"


def test_the_model_is_frozen_and_refuses_unknown_keys_everywhere():
    opts = SampleOptions(region="eu-west-1")
    with pytest.raises(ValueError):
        opts.region = "eu-north-1"  # type: ignore[misc]
    with pytest.raises(ValueError):
        SampleOptions.model_validate({"region": "eu-west-1", "extra": 1})
