"""Services: the model, interface detection, registry, Docker runtime, search.

Only the pure model is re-exported here, so that importing ``rnn_tui.services.model`` (or
this package) never loads docker or asyncio.  Import the heavy parts from their modules:
``services.registry.ServiceRegistry``, ``services.runtime.DockerRuntime``,
``services.control_api.ServiceControl``, ``services.over_transport.install_handlers``.
See docs/SERVICES.md.
"""

from rnn_tui.services.model import (
    Interface,
    InterfaceType,
    MountDirection,
    Requirements,
    Service,
    ServiceKind,
    ServiceSpecError,
    Visibility,
    VisibilityMode,
    service_id,
)

__all__ = ["Interface", "InterfaceType", "MountDirection", "Requirements", "Service",
           "ServiceKind", "ServiceSpecError", "Visibility", "VisibilityMode", "service_id"]
