"""The human interfaces: the Streamlit console (pages, components, state) and the ``opsconductor`` CLI.

ui calls the public ``core`` API only; it never touches tables. ``ui/runtime.py`` is the only module
that may import ``jobs`` (to start workers).
"""
