"""Notifications (issue 16 item 3): tell people there is work, through webhooks and email.

- ``outbox``: the rows written in the transaction of the change that causes them (an approval waits, work
  enters the DLQ, an execution ends for a requester who opted in); never a network call.
- ``delivery``: after commit, a worker thread takes due rows, sends them, records every attempt (an event on
  the execution's audited trail), retries with backoff, and gives up after a bounded number of attempts.
- ``messages``: what is sent: ids, names, status, who, and a deep link to the console; never a secret value,
  a parameter or step output. Webhook bodies are signed (HMAC-SHA256) with the tenant's signing secret.
- ``targets``: webhook URL rules (SSRF: no loopback, link-local or metadata addresses unless allowed).
- ``channels``: the use cases an admin (or a user, for their own opt-in) calls.

Imports core's kernel and db; never ``jobs``, ``ui`` or ``streamlit``.
"""
