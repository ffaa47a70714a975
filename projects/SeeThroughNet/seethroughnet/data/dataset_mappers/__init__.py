from .semantic_segmentation_mapper import SemanticSegmentationMapper

__all__ = ["SemanticSegmentationMapper"]
