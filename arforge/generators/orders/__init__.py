"""Generation orders, registered by name (``ORDERS.get("raster")(grid_hw)``; ``register_order``
adds a user's own, which a YAML then names as ``model.order: {name: ...}``)."""

from dataclasses import dataclass, field
from typing import Any

from arforge.config import ConfigError
from arforge.generators.orders.base import DecodeStep, Order, SideQueries, TrainingArrangement
from arforge.generators.orders.cells import Cells
from arforge.generators.orders.grouped import GroupedOrder, group_causal_mask
from arforge.generators.orders.masked import MaskedRandomOrder
from arforge.generators.orders.neighbor import Neighbor
from arforge.generators.orders.next_block import NextBlock
from arforge.generators.orders.next_scale import NextScale
from arforge.generators.orders.raster import Raster
from arforge.generators.orders.zipar import PROXIES, ZipAR, check_proxy, proxy_source, zipar_schedule
from arforge.registry import Registry

ORDERS: Registry[type[Order]] = Registry("generation order")


def register_order(cls: type[Order]) -> type[Order]:
    """Class decorator: register an :class:`Order` subclass under its ``name``."""
    ORDERS.register(cls.name, cls)
    return cls


for _order in (Raster, NextScale, NextBlock, Neighbor, Cells, MaskedRandomOrder, ZipAR):
    register_order(_order)


@dataclass
class OrderConfig:
    """An order chosen by name in a config: ``{name: zipar, options: {window: 4}}`` builds
    ``ORDERS.get(name)(grid_shape, **options)``."""

    name: str = "raster"
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, grid_shape: tuple[int, ...]) -> Order:
        """The order over ``grid_shape``; ``ConfigError`` naming the key for an unknown name or option."""
        if self.name not in ORDERS:
            raise ConfigError(f"unknown order 'model.order.name: {self.name}'; registered: {', '.join(ORDERS.names())} "
                              "(a user's order needs its module: --import MODULE)")
        try:
            return ORDERS.get(self.name)(tuple(grid_shape), **self.options)
        except TypeError as err:
            raise ConfigError(f"model.order.options {self.options} do not fit order '{self.name}': {err}") from err

__all__ = ["ORDERS", "PROXIES", "Cells", "DecodeStep", "GroupedOrder", "MaskedRandomOrder", "Neighbor", "NextBlock",
           "NextScale", "Order", "OrderConfig", "Raster", "SideQueries", "TrainingArrangement", "ZipAR", "check_proxy",
           "group_causal_mask", "proxy_source", "register_order", "zipar_schedule"]
