"""Remote Network Node."""
