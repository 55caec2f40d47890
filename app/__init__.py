"""GTA Lens, the Streamlit app: `streamlit run app/main.py` (or `make run`)."""
