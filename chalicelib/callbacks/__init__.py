"""The encrypted callback gateway: verify, decrypt, store once, apply."""
