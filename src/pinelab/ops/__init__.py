"""Operations: health, metrics, backups and shutdown."""
