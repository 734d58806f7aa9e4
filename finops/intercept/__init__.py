"""Interception: the facade in front of the SDK and the transport under it (DESIGN.md §1)."""
