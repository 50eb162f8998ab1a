"""Generation orders, registered by name (``ORDERS.get("raster")(grid_hw)``)."""

from arforge.generators.orders.base import DecodeStep, Order, TrainingArrangement
from arforge.generators.orders.cells import Cells
from arforge.generators.orders.grouped import GroupedOrder, group_causal_mask
from arforge.generators.orders.neighbor import Neighbor
from arforge.generators.orders.next_block import NextBlock
from arforge.generators.orders.next_scale import NextScale
from arforge.generators.orders.raster import Raster
from arforge.registry import Registry

ORDERS: Registry[type[Order]] = Registry("generation order")
ORDERS.register("raster", Raster)
ORDERS.register("next_scale", NextScale)
ORDERS.register("next_block", NextBlock)
ORDERS.register("neighbor", Neighbor)
ORDERS.register("cells", Cells)

__all__ = ["ORDERS", "Cells", "DecodeStep", "GroupedOrder", "Neighbor", "NextBlock", "NextScale", "Order", "Raster",
           "TrainingArrangement", "group_causal_mask"]
