"""Generators: the shared decoder backbone, generation orders, heads, conditioning and model families.

Families are registered model classes (``arforge.pretrained.MODEL_CLASSES``, kind ``generator``):
``raster`` (:class:`RasterGenerator`), ``raster_flow`` (:class:`RasterFlowGenerator`), ``var`` (:class:`VARGenerator`), ``flowar``
(:class:`FlowARGenerator`), ``mar`` (:mod:`arforge.generators.mar`).
"""

from arforge.generators.backbone import Backbone, BackboneConfig
from arforge.generators.flowar import FlowARConfig, FlowARGenerator
from arforge.generators.kv_cache import KVCache
from arforge.generators.orders import ORDERS, Order, Raster
from arforge.generators.raster import RasterConfig, RasterGenerator
from arforge.generators.raster_flow import RasterFlowConfig, RasterFlowGenerator
from arforge.generators.var import VARConfig, VARGenerator, var_backbone

__all__ = [
    "Backbone", "BackboneConfig", "FlowARConfig", "FlowARGenerator", "KVCache", "ORDERS", "Order", "Raster", "RasterConfig",
    "RasterGenerator", "RasterFlowConfig", "RasterFlowGenerator", "VARConfig", "VARGenerator", "var_backbone",
]
