"""RAG & LoRA Studio: all logic lives here; pages/ only lays it out. Never imports streamlit."""
