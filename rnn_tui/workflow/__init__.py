"""Workflows: model, YAML, validation, scheduler core, transfers and signed receipts.

The cores here (model, scheduler, transfer, receipts) never import asyncio, socket, textual,
peewee or docker; the orchestrator that drives them over the network lives beside them.
"""
