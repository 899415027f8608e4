"""The console's web server: Streamlit serving streamlit_app.py, plus the session cookie's two routes.

``opsconductor up`` runs ``streamlit run console_app.py``; an ASGI server can serve ``console_app:app`` too
(``uvicorn console_app:app``). The routes are in ui/session_routes.py; without them (``streamlit run
streamlit_app.py``) the console works, but a reload signs the user out.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.starlette import App

from ui.session_routes import ROUTES

app = App(Path(__file__).resolve().with_name("streamlit_app.py"), routes=ROUTES)
