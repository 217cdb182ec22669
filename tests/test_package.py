"""`import ccnet_d2` is all an application needs: it registers every component and dataset."""
import subprocess
import sys


def test_import_registers_every_component():
    """Run in a fresh interpreter, so that no other test's imports can have done the registration."""
    code = """
import ccnet_d2
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, SEM_SEG_HEADS_REGISTRY
assert "build_resnet_rcca_fpn_backbone" in BACKBONE_REGISTRY, "RCCA-FPN backbone"
assert "build_dilated_resnet_backbone" in BACKBONE_REGISTRY, "dilated ResNet"
assert "CCNetHead" in SEM_SEG_HEADS_REGISTRY, "CCNet head"
assert "CCNetSegmentor" in META_ARCH_REGISTRY, "CCNet meta-architecture"
assert "CCNetSemSegFPNHead" in SEM_SEG_HEADS_REGISTRY, "Panoptic FPN's CCNet stuff branch"
names = set(DatasetCatalog.list())
for name in ("ccnet_toy_train", "ccnet_toy_val", "ccnet_toy_sem_seg_train", "ccnet_toy_sem_seg_val",
             "lip_sem_seg_train", "lip_sem_seg_val", "voc_2012_sem_seg_train_aug", "voc_2012_sem_seg_val",
             "ccnet_toy_panoptic_train", "ccnet_toy_panoptic_val", "cityscapes_fine_panoptic_train_separated",
             "cityscapes_fine_panoptic_val_separated"):
    assert name in names, name
assert MetadataCatalog.get("lip_sem_seg_val").flip_pairs == [(14, 15), (16, 17), (18, 19)]
for api in ("add_ccnet_config", "criss_cross_attention", "CrissCrossAttention", "RCCA", "RCCAHeadBlock"):
    assert hasattr(ccnet_d2, api), api
print("registered")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "registered" in result.stdout
