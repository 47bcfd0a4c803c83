"""One pydantic model per recipe section."""
