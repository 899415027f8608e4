"""Sign in (the form: ui/components/sign_in_form.py). Any other page opened while signed out shows the same
form in its place and opens once signed in (streamlit_app.py)."""

from __future__ import annotations

from ui.components import sign_in_form

sign_in_form.render()
