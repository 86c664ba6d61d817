"""RAG & LoRA Studio: the entry point. Pages live in app_pages/, logic in core/."""

import streamlit as st

from app_pages.shared import render_sidebar, run_page

st.set_page_config(page_title="RAG & LoRA Studio", page_icon="🧪", layout="wide")

PAGES = {
    "Studio": [
        st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("app_pages/documents.py", title="Documents", icon=":material/description:"),
        st.Page("app_pages/chat.py", title="Chat", icon=":material/forum:"),
        st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
    ],
    "LoRA": [
        st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("app_pages/classify.py", title="Classify", icon=":material/label:"),
        st.Page("app_pages/adapters.py", title="Adapters", icon=":material/extension:"),
    ],
    "Setup": [
        st.Page("app_pages/settings.py", title="Settings", icon=":material/settings:"),
    ],
}

# Streamlit's wide layout keeps 5rem of margin on each side: at 1024 pixels with the sidebar
# open, the Chat page's sources were 190 pixels wide, three or four words a line. The question
# box below keeps the page's width.
# A page link's label wraps: Home's "Evaluate: measure retrieval and answers" was cut to
# "Evaluate: measure retrieval an" at 1024 pixels.
st.html("""<style>@media (max-width: 1280px) {
  [data-testid=stMainBlockContainer], [data-testid=stBottomBlockContainer] {
  padding-left: 1.5rem; padding-right: 1.5rem;}}
  [data-testid=stPageLink] a, [data-testid=stPageLink] p {white-space: normal; height: auto;}
  </style>""")

page = st.navigation(PAGES)
render_sidebar()
run_page(page)
