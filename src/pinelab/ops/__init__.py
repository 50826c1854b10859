"""Operations: health checks, metrics, configuration checks and graceful shutdown."""
