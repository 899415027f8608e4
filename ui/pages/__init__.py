"""The console's pages, one file each, run by ``st.navigation`` in streamlit_app.py (not imported)."""
