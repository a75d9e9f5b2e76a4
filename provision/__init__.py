"""provision: the cloud side of Prefect work pools as Pulumi stacks, registered in Prefect."""

__version__ = "0.1.0"
