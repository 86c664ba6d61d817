"""RAG & LoRA Studio: all logic lives here; app_pages/ only lays it out. Never imports streamlit."""
