"""ftkit: fine-tune large language models from declarative, validated YAML recipes."""

__version__ = "0.1.0"
