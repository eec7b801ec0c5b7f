"""Small shared helpers with no protocol knowledge."""
