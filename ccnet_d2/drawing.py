"""Drawing of a model's predictions with Detectron2's Visualizer (``tools/demo.py``, the main job).

Works for any config of the project: panoptic models (``"panoptic_seg"``: things and stuff segments),
instance models (``"instances"``) and semantic-segmentation models (``"sem_seg"``, drawn as its per-pixel
argmax).
"""
import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.utils.visualizer import ColorMode, Visualizer

__all__ = ["draw_predictions"]


def draw_predictions(image_bgr: np.ndarray, predictions: dict, metadata_name: str, scale: float = 1.0) -> np.ndarray:
    """Return ``image_bgr`` with the predictions of one image drawn on it (BGR, ``scale`` times its size;
    scale > 1 keeps labels readable on small images)."""
    metadata = MetadataCatalog.get(metadata_name)
    visualizer = Visualizer(image_bgr[:, :, ::-1], metadata, scale=scale, instance_mode=ColorMode.IMAGE)
    if "panoptic_seg" in predictions:  # Panoptic FPN also returns its instances and stuff logits
        panoptic, segments = predictions["panoptic_seg"]
        drawn = visualizer.draw_panoptic_seg(panoptic.to("cpu"), segments)
    elif "instances" in predictions:
        drawn = visualizer.draw_instance_predictions(predictions["instances"].to("cpu"))
    elif "sem_seg" in predictions:
        drawn = visualizer.draw_sem_seg(predictions["sem_seg"].argmax(dim=0).to("cpu"))
    else:
        raise ValueError(f"cannot draw predictions with keys {sorted(predictions)}: expected "
                         "'panoptic_seg', 'instances' or 'sem_seg'")
    return drawn.get_image()[:, :, ::-1]
