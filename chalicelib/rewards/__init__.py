"""Reward issuing and crediting: activities, grants, counters, tokens, wallets, withdrawals."""
