"""Persistence: settings, engine/session factory, SQLModel tables, migrations, seed data.

`db` imports nothing of ours; `core` builds on it.
"""
