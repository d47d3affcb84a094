"""The dashboard's pages: each module is a Streamlit page script (run as ``__main__`` by
``st.navigation``) with its ``render()`` function."""
