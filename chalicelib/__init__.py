"""rewardgate: callback gateway, exactly-once rewards, reconciliation (see README.md)."""

__version__ = "0.2.0"
