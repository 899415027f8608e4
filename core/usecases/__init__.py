"""The write use cases of the public API: each opens its own transaction and checks the caller's role."""
