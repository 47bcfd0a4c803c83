"""Model side: runtime resolution (device, precision, dtype, attention), loading, adapters."""
