"""The read models of the public API: executions, the dashboard, the approval inbox."""
