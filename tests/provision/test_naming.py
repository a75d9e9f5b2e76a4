"""The shared name shortening, pinned to exact outputs for each cloud's parameters.

Deployed resources carry these names: a change here would rename (and so replace) them.
"""

from __future__ import annotations

import pytest

from provision.targets import aws_naming, azure_naming, gcp_naming
from provision.targets.naming import bounded, pool_hash

GCP_POOL = "nightly-batchjobs-for-finance"
AZURE_POOL = "Finance Reporting, Quarterly Close " * 3
AWS_POOL = "a" * 45 + "_" + "b" * 30


def test_pool_hash_is_the_start_of_the_sha256_of_the_name():
    assert pool_hash("etl", 4) == "631f"  # GCP and Azure
    assert pool_hash("etl", 6) == "631fd8"  # AWS
    assert pool_hash("ETL", 6) == "6cab6d"
    assert pool_hash("ETL pool #2", 4) == "a5b9"
    assert pool_hash("", 4) == "e3b0"
    assert gcp_naming.pool_hash("etl") == azure_naming.pool_hash("etl") == "631f"
    assert aws_naming.pool_hash("etl") == "631fd8"


def test_a_name_within_the_limit_is_stem_and_suffix():
    assert bounded("etl", "etl", "worker", 30, hash_len=4) == "etl-worker"
    assert bounded("etl", "ETL", "ecs-worker", 64, hash_len=6) == "etl-ecs-worker"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # GCP: service account ids stop at 30; the cut stem loses its trailing hyphen.
        (gcp_naming.worker_account_id(GCP_POOL), "nightly-batchjobs-6ff6-worker"),
        (
            bounded(GCP_POOL, GCP_POOL, "worker", gcp_naming.ACCOUNT_ID_MAX, hash_len=4),
            "nightly-batchjobs-6ff6-worker",
        ),
        # Azure: resource groups stop at 90.
        (
            azure_naming.resource_group(AZURE_POOL),
            "finance-reporting-quarterly-close-finance-reporting-quarterly-close-finance-report"
            "-e028-rg",
        ),
        # AWS: IAM names stop at 64, the hash is 6 chars, and a cut stem loses a trailing "_".
        (aws_naming.worker_user_name(AWS_POOL), "a" * 45 + "-ebbd8d-ecs-worker"),
        (
            bounded(AWS_POOL, AWS_POOL, "ecs-worker", aws_naming.IAM_NAME_MAX, hash_len=6),
            "a" * 45 + "-ebbd8d-ecs-worker",
        ),
    ],
)
def test_a_long_name_is_cut_and_hashed(name, expected):
    assert name == expected
