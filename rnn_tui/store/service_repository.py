"""The services registry's persistence, backed by the store's ``services`` table.

Rows hold the service's full dict (``Service.to_dict()``) as JSON; ``Service.from_dict``
validates it again on the way out, so a hand-edited or older row fails loudly, naming the
service, instead of leaking half-parsed values into the node.
"""

from __future__ import annotations

from rnn_tui.services.model import Service
from rnn_tui.store.db import Store


class StoreServiceRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def save(self, service: Service) -> None:
        data = service.to_dict()
        await self.store.call(self.store.put_service, service.id, name=service.name,
                              kind=service.kind.value, owner=str(service.owner),
                              version=service.version, spec=data)

    async def get(self, service_id: str) -> Service | None:
        row = await self.store.call(self.store.get_service, service_id)
        return None if row is None else Service.from_dict(row.body, where=f"service {service_id}")

    async def list(self) -> list[Service]:
        rows = await self.store.call(self.store.list_services)
        return [Service.from_dict(r.body, where=f"service {r.key}") for r in rows]

    async def delete(self, service_id: str) -> bool:
        return await self.store.call(self.store.delete_service, service_id)
