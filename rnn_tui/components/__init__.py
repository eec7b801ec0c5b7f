"""Node components: each wires one subsystem to the transport, store, control API and events.

``node.py`` creates them in order and closes them in reverse.  A component never reaches
into another; they meet through the node's shared parts (transport handlers, event bus).
"""
