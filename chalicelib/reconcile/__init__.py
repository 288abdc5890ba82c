"""Hourly reconciliation: orders, ledger, wallets, counters and queues must agree."""
