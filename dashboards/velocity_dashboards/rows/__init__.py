"""One module per dashboard row; each exposes `row() -> Row`."""
