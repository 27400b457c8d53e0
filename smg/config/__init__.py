"""The gateway's configuration: one typed, frozen :class:`GatewayConfig` of sections.

``GatewayConfig`` and its loaders live in :mod:`smg.config.gateway`; the sections in
:mod:`smg.config.sections` (and one module per later subsystem beside it).
"""

from smg.config.gateway import GatewayConfig
from smg.config.sections import (
    BreakerSettings,
    HealthSettings,
    ModelSettings,
    PDSettings,
    RetrySettings,
    RoutingConfig,
    ServerConfig,
)
from smg.config.reliability import ReliabilitySettings
from smg.config.history import HistorySettings
from smg.config.discovery import DiscoverySettings
from smg.config.security import SecuritySettings

__all__ = [
    "BreakerSettings",
    "DiscoverySettings",
    "GatewayConfig",
    "HealthSettings",
    "HistorySettings",
    "ModelSettings",
    "PDSettings",
    "ReliabilitySettings",
    "RetrySettings",
    "RoutingConfig",
    "SecuritySettings",
    "ServerConfig",
]
