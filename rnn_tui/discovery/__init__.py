"""Finding peers: the node's signed metadata record in BEP 44 and the peer manager."""
