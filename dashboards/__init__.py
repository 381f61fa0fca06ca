"""Dashboards: the Streamlit app managers and engineers read."""
