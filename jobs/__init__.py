"""Background execution with Dramatiq: the broker (Redis or embedded), actors, worker lifecycle, runtime.

``jobs`` imports ``core`` and registers a Dispatcher with it; ``core`` never imports ``jobs``. Import
``jobs.broker`` before any actor module: it sets the process's broker.
"""
