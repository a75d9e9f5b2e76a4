"""One offline plan's flags per cloud: what the tests that plan every cloud stack pass after
``provision preview POOL``."""

PLANS = {
    "gcp": ["--type", "cloud-run-v2", "--project", "my-proj-123", "--region", "europe-west1"],
    "aws": ["--type", "ecs", "--region", "eu-west-1"],
    "azure": [
        "--type",
        "azure-container-instance",
        "--subscription",
        "00000000-0000-0000-0000-000000000000",
        "--resource-group",
        "rg",
        "--location",
        "westeurope",
    ],
}
