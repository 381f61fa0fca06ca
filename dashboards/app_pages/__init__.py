"""The dashboard's pages, one script each, run by ``st.navigation`` in ``dashboards/app.py``.

Not called ``pages/``: Streamlit treats a ``pages/`` folder next to the main script as a
version-1 multipage app and, after the first interaction, runs the page script alone,
without the entry point's sidebar.
"""
