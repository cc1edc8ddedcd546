"""The action layer: what secmon does with findings (feed, cases, user notifications)."""
