"""Interactive play: identity codes, games on a Bilibili-compatible signed API, live events, settlement, bans."""
