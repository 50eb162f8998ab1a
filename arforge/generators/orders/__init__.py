"""Generation orders, registered by name (``ORDERS.get("raster")(grid_hw)``; ``register_order``
adds a user's own, which a YAML then names as ``model.order: {name: ...}``)."""

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

ORDERS: Registry[type[Order]] = Registry("order")


def register_order(cls: type[Order]) -> type[Order]:
    """Class decorator: register an :class:`Order` subclass under its ``name``."""
    ORDERS.register(cls.name, cls)
    return cls


for _order in (Raster, NextScale, NextBlock, Neighbor, Cells, MaskedRandomOrder, ZipAR):
    register_order(_order)

__all__ = ["ORDERS", "PROXIES", "Cells", "DecodeStep", "GroupedOrder", "MaskedRandomOrder", "Neighbor", "NextBlock",
           "NextScale", "Order", "Raster", "SideQueries", "TrainingArrangement", "ZipAR", "check_proxy",
           "group_causal_mask", "proxy_source", "register_order", "zipar_schedule"]
