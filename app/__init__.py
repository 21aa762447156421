"""rlhf-studio: the web service (FastAPI) and everything that touches the database."""
