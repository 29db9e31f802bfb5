"""What operators see and control: health, supervisor, metrics."""
