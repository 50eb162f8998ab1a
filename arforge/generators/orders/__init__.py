"""Generation orders, registered by name (``ORDERS.get("raster")(grid_hw)``)."""

from arforge.generators.orders.base import DecodeStep, Order, TrainingArrangement
from arforge.generators.orders.next_scale import NextScale
from arforge.generators.orders.raster import Raster
from arforge.registry import Registry

ORDERS: Registry[type[Order]] = Registry("generation order")
ORDERS.register("raster", Raster)
ORDERS.register("next_scale", NextScale)

__all__ = ["ORDERS", "DecodeStep", "NextScale", "Order", "Raster", "TrainingArrangement"]
