"""One module per part of the page: the sidebar, the Analyse, History and Evaluations tabs, and the
``show_run`` component that every place showing a run uses. (Not named ``pages``: Streamlit would turn a
``pages/`` folder next to the entry script into its own navigation.)"""
