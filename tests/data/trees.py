"""Small dataset trees in each dataset's exact on-disk layout, written into a temporary dataset root."""
import json
import os

import numpy as np
from PIL import Image

# The first entries of Pascal VOC's colour map (index -> RGB) and the void colour of index 255.
VOC_PALETTE_HEAD = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128)]
VOC_VOID_RGB = (224, 224, 192)


def _write_jpg(path, height, width, rng):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def _write_png(path, array, palette=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(array.astype(np.uint8))
    if palette is not None:
        image.putpalette(palette)  # "L" becomes "P": the pixel values stay the class indices
    image.save(path)


# LIP's two layouts: split -> (image folder, label folder, id list), written out as each code base reads them.
LIP_TREES = {
    "official": lambda split: (f"LIP/TrainVal_images/{split}_images",
                               f"LIP/TrainVal_parsing_annotations/{split}_segmentations",
                               f"LIP/TrainVal_images/{split}_id.txt"),
    "flat": lambda split: (f"LIP/{split}_images", f"LIP/{split}_segmentations", f"LIP/{split}_id.txt"),
}


def make_lip_tree(root, splits=(("train", 3), ("val", 2)), size=(40, 30), seed=0, layout="official"):
    """The official release (LIP/TrainVal_images/{split}_images, TrainVal_parsing_annotations/{split}_segmentations,
    TrainVal_images/{split}_id.txt) or the CE2P / SCHP flat layout (LIP/{split}_images, {split}_segmentations,
    {split}_id.txt).

    Returns {split: {image_id: label array}}.
    """
    rng = np.random.default_rng(seed)
    height, width = size
    labels = {}
    for split, count in splits:
        image_dir, label_dir, id_file = LIP_TREES[layout](split)
        ids = [f"{100 + i}_{seed}{i:05d}" for i in range(count)]
        labels[split] = {}
        for image_id in ids:
            _write_jpg(os.path.join(root, image_dir, image_id + ".jpg"), height, width, rng)
            label = rng.integers(0, 20, (height, width), dtype=np.uint8)
            _write_png(os.path.join(root, label_dir, image_id + ".png"), label)
            labels[split][image_id] = label
        with open(os.path.join(root, id_file), "w") as f:
            f.write("".join(i + "\n" for i in ids))
    return labels


def make_cityscapes_tree(root, splits=(("train", 2), ("val", 1)), size=(32, 64), city="aachen"):
    """cityscapes/leftImg8bit/<split>/<city>/*_leftImg8bit.png + gtFine/<split>/<city>/*_gtFine_polygons.json.

    plus the release's ``*_gtFine_{labelIds,instanceIds}.png``. Each frame: "road" on the left half (train id 0), a "car" box in the right half (train id 13),
    the rest unlabelled (255). Returns {split: [frame prefix]}.
    """
    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    rng = np.random.default_rng(1)
    height, width = size
    frames = {}
    for split, count in splits:
        frames[split] = []
        for i in range(count):
            prefix = f"{city}_{i:06d}_000019"
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            _write_png(os.path.join(root, "cityscapes/leftImg8bit", split, city, prefix + "_leftImg8bit.png"), image)
            polygons = {"imgHeight": height, "imgWidth": width, "objects": [
                {"label": "road", "polygon": [[0, 0], [width // 2 - 1, 0], [width // 2 - 1, height - 1],
                                              [0, height - 1]]},
                {"label": "car", "polygon": [[width // 2 + 4, 4], [width - 5, 4], [width - 5, height - 5],
                                             [width // 2 + 4, height - 5]]},
            ]}
            gt_dir = os.path.join(root, "cityscapes/gtFine", split, city)
            os.makedirs(gt_dir, exist_ok=True)
            json_file = os.path.join(gt_dir, prefix + "_gtFine_polygons.json")
            with open(json_file, "w") as f:
                json.dump(polygons, f)
            # The release also ships label-id and instance-id images drawn from the same polygons.
            json2labelImg(json_file, json_file.replace("_polygons.json", "_labelIds.png"), "ids")
            label_ids = np.asarray(Image.open(json_file.replace("_polygons.json", "_labelIds.png")))
            instance_ids = label_ids.astype(np.uint16)
            instance_ids[label_ids == 26] = 26000  # the one car, instance 0 (Cityscapes: label id * 1000 + k)
            Image.fromarray(instance_ids).save(json_file.replace("_polygons.json", "_instanceIds.png"))
            frames[split].append(prefix)
    return frames


def _box(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def make_cityscapes_scene_tree(root, split="val", count=3, size=(64, 96), city="bremen", seed=0):
    """A Cityscapes split whose frames exercise every rule of the instance loaders: overlapping cars and
    persons (later objects in the file cover earlier ones), a crowd region (``persongroup``), an object
    cut in two by a later pole (a MultiPolygon), a stuff class covering an instance (``ego vehicle``),
    a label with id -1 (``license plate``) and a deleted object. Its ``labelIds``, ``labelTrainIds`` and
    ``instanceIds`` images are drawn by cityscapesscripts from the polygons, as the release's are.
    Returns the list of frame prefixes."""
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    rng = np.random.default_rng(seed)
    height, width = size
    prefixes = []
    for i in range(count):
        prefix = f"{city}_{i:06d}_000019"
        dx, dy = int(rng.integers(0, 8)), int(rng.integers(0, 6))
        objects = [
            {"label": "road", "polygon": _box(0, height // 2, width - 1, height - 1)},
            {"label": "car", "polygon": _box(4 + dx, 20 + dy, 44 + dx, 50 + dy)},
            {"label": "car", "polygon": _box(30 + dx, 26, 70 + dx, 56), "deleted": 1},
            {"label": "person", "polygon": [[36 + dx, 10], [48 + dx, 10], [50 + dx, 60], [34 + dx, 60]]},
            {"label": "persongroup", "polygon": _box(70, 8 + dy, 92, 40 + dy)},
            {"label": "truck", "polygon": _box(52, 30, 90, 62)},
            {"label": "pole", "polygon": _box(66, 0, 69, height - 1)},
            {"label": "license plate", "polygon": _box(10 + dx, 44 + dy, 18 + dx, 47 + dy)},
            {"label": "ego vehicle", "polygon": _box(0, height - 6, width - 1, height - 1)},
        ]
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        _write_png(os.path.join(root, "cityscapes/leftImg8bit", split, city, prefix + "_leftImg8bit.png"), image)
        gt_dir = os.path.join(root, "cityscapes/gtFine", split, city)
        os.makedirs(gt_dir, exist_ok=True)
        json_file = os.path.join(gt_dir, prefix + "_gtFine_polygons.json")
        with open(json_file, "w") as f:
            json.dump({"imgHeight": height, "imgWidth": width, "objects": objects}, f)
        json2labelImg(json_file, json_file.replace("_polygons.json", "_labelIds.png"), "ids")
        json2labelImg(json_file, json_file.replace("_polygons.json", "_labelTrainIds.png"), "trainIds")
        annotation = Annotation()
        annotation.fromJsonFile(json_file)
        # Drawn as 32-bit ids, which Pillow no longer writes to PNG: saved as the release's 16-bit PNG.
        instance_ids = np.asarray(createInstanceImage(annotation, "ids"), dtype=np.uint16)
        Image.fromarray(instance_ids).save(json_file.replace("_polygons.json", "_instanceIds.png"))
        prefixes.append(prefix)
    return prefixes


def make_cityscapes_panoptic_tree(root: str) -> str:
    """``make_cityscapes_scene_tree`` for train and val, with the panoptic PNGs and json that cityscapesscripts'
    createPanopticImgs makes from them (as for the release). Returns the gtFine folder."""
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    for split in ("train", "val"):
        make_cityscapes_scene_tree(root, split=split, count=2)
    gt = os.path.join(root, "cityscapes", "gtFine")
    convert2panoptic(gt, gt, setNames=["train", "val"])
    return gt


def make_ade20k_tree(root, counts=(("training", 2), ("validation", 1)), size=(24, 36)):
    """ADEChallengeData2016/images/<split>/ADE_*.jpg + annotations/<split>/ADE_*.png (labels 0..150).

    Returns {split: {name: label array}}.
    """
    rng = np.random.default_rng(2)
    height, width = size
    labels = {}
    for split, count in counts:
        labels[split] = {}
        tag = "train" if split == "training" else "val"
        for i in range(count):
            name = f"ADE_{tag}_{i + 1:08d}"
            _write_jpg(os.path.join(root, "ADEChallengeData2016/images", split, name + ".jpg"), height, width, rng)
            label = rng.integers(0, 151, (height, width), dtype=np.uint8)
            label[0, :4] = [0, 1, 150, 75]  # make sure the edge values are present
            _write_png(os.path.join(root, "ADEChallengeData2016/annotations", split, name + ".png"), label)
            labels[split][name] = label
    return labels


def make_voc_sbd_tree(root, voc_train=("2007_000032", "2007_000039"), voc_val=("2007_000033",),
                      sbd_train=("2008_000002", "2007_000039"), sbd_val=("2008_000003", "2007_000033"),
                      size=(20, 26)):
    """VOCdevkit/VOC2012/{JPEGImages,SegmentationClass (palette PNGs),ImageSets/Segmentation/{train,val}.txt}
    + benchmark_RELEASE/dataset/{cls/*.mat,img/*.jpg,train.txt,val.txt}.

    Returns (voc_labels, sbd_labels): {image_id: label array}.
    """
    import scipy.io

    rng = np.random.default_rng(3)
    height, width = size
    voc = os.path.join(root, "VOCdevkit/VOC2012")
    sbd = os.path.join(root, "benchmark_RELEASE/dataset")
    palette = [c for rgb in VOC_PALETTE_HEAD for c in rgb] + [0] * 3 * (255 - len(VOC_PALETTE_HEAD)) + list(VOC_VOID_RGB)
    voc_labels, sbd_labels = {}, {}
    for image_id in sorted(set(voc_train) | set(voc_val) | set(sbd_train) | set(sbd_val)):
        _write_jpg(os.path.join(voc, "JPEGImages", image_id + ".jpg"), height, width, rng)
    for image_id in sorted(set(voc_train) | set(voc_val)):
        label = rng.integers(0, len(VOC_PALETTE_HEAD), (height, width), dtype=np.uint8)
        label[0, :] = 255  # void border
        _write_png(os.path.join(voc, "SegmentationClass", image_id + ".png"), label, palette)
        voc_labels[image_id] = label
    os.makedirs(os.path.join(sbd, "cls"), exist_ok=True)
    for image_id in sorted(set(sbd_train) | set(sbd_val)):
        label = rng.integers(0, 21, (height, width), dtype=np.uint8)
        scipy.io.savemat(os.path.join(sbd, "cls", image_id + ".mat"), {"GTcls": {
            "Segmentation": label, "Boundaries": np.zeros((21, 1), dtype=object),
            "CategoriesPresent": np.unique(label)}})
        sbd_labels[image_id] = label
    split_dir = os.path.join(voc, "ImageSets/Segmentation")
    os.makedirs(split_dir, exist_ok=True)
    for path, ids in ((os.path.join(split_dir, "train.txt"), voc_train), (os.path.join(split_dir, "val.txt"), voc_val),
                      (os.path.join(sbd, "train.txt"), sbd_train), (os.path.join(sbd, "val.txt"), sbd_val)):
        with open(path, "w") as f:
            f.write("".join(i + "\n" for i in ids))
    return voc_labels, sbd_labels


# CamVid: labelled frames per split (real naming styles, small frame numbers) and each sequence's length.
CAMVID_NAMES = {"train": ["0001TP_000030", "0001TP_000060", "0006R0_f00006"], "val": ["0016E5_00012"],
                "test": ["Seq05VD_f00000", "Seq05VD_f00030"]}
CAMVID_SEQUENCE_FRAMES = {"0001TP": 70, "0006R0": 20, "0016E5": 25, "Seq05VD": 34}


def camvid_source_frame(sequence, index, size=(72, 96)):
    """Frame ``index`` of a generated 30 Hz sequence (BGR uint8): smooth noise plus a level that grows
    with the index, so that every frame differs from its neighbours."""
    rng = np.random.default_rng([sum(map(ord, sequence)), index])
    small = rng.integers(0, 120, (size[0] // 8, size[1] // 8, 3)).astype(np.uint8)
    image = np.asarray(Image.fromarray(small).resize(size[::-1], Image.BILINEAR)).astype(int)
    return np.clip(image + (index * 2) % 120, 0, 255).astype(np.uint8)


def make_camvid_tree(root, size=(36, 48), source_size=(72, 96), video_sequences=("0016E5",)):
    """CamVid/{train,val,test}/<name>.png + {split}annot/<name>.png (SegNet's layout; ids 0-10 and 11)
    and the 30 Hz source: ``camvid_source/<seq>/<index:06d>.png`` (numbered from 0), or
    ``camvid_source/<seq>.avi`` (MJPG) for ``video_sequences``. Each labelled image is its source frame
    resized to ``size`` as the preparation resizes. Returns ({split: {name: label}}, source folder)."""
    import cv2

    rng = np.random.default_rng(4)
    source = os.path.join(root, "camvid_source")
    for sequence, length in CAMVID_SEQUENCE_FRAMES.items():
        frames = [camvid_source_frame(sequence, i, source_size) for i in range(length)]
        if sequence in video_sequences:
            os.makedirs(source, exist_ok=True)
            writer = cv2.VideoWriter(os.path.join(source, sequence + ".avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30,
                                     source_size[::-1])
            for frame in frames:
                writer.write(frame)
            writer.release()
        else:
            os.makedirs(os.path.join(source, sequence), exist_ok=True)
            for i, frame in enumerate(frames):
                cv2.imwrite(os.path.join(source, sequence, f"{i:06d}.png"), frame)
    labels = {}
    for split, names in CAMVID_NAMES.items():
        labels[split] = {}
        for name in names:
            sequence, index = name.split("_")[0], int(name.split("_")[1].lstrip("f"))
            image = cv2.resize(camvid_source_frame(sequence, index, source_size), size[::-1], interpolation=cv2.INTER_AREA)
            os.makedirs(os.path.join(root, "CamVid", split), exist_ok=True)
            cv2.imwrite(os.path.join(root, "CamVid", split, name + ".png"), image)
            label = rng.integers(0, 12, size, dtype=np.uint8)
            _write_png(os.path.join(root, "CamVid", split + "annot", name + ".png"), label)
            labels[split][name] = label
    return labels, source


def make_coco_panoptic_tree(root, splits=(("train2017", 2), ("val2017", 2)), size=(64, 96), seed=0):
    """coco/{train,val}2017/*.jpg, annotations/panoptic_<split>.json + panoptic_<split>/*.png (COCO panoptic
    format, all 133 COCO categories listed) and annotations/instances_<split>.json (the things as polygons):
    per image a "person" and a "car" rectangle over two stuff halves ("banner", "blanket") and a void
    strip. Returns the coco folder. The stuff maps (panoptic_stuff_<split>/) are for
    tools/prepare_panoptic_fpn.py to write."""
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    from ccnet_d2.data.panoptic_format import ids_to_rgb

    rng = np.random.default_rng(seed)
    coco = os.path.join(root, "coco")
    height, width = size
    stuff_ids = [c["id"] for c in COCO_CATEGORIES if not c["isthing"]][:2]
    categories = [{k: c[k] for k in ("id", "name", "isthing", "supercategory") if k in c} for c in COCO_CATEGORIES]
    os.makedirs(os.path.join(coco, "annotations"), exist_ok=True)
    for split, count in splits:
        images, panoptic, instances = [], [], []
        for index in range(count):
            image_id = 1000 * (split == "val2017") + index + 1
            name = f"{image_id:012d}"
            _write_jpg(os.path.join(coco, split, name + ".jpg"), height, width, rng)
            ids = np.zeros(size, np.int64)
            ids[: height // 2] = 1  # stuff halves; the last row stays void
            ids[height // 2: height - 1] = 2
            segments = [{"id": 1, "category_id": stuff_ids[0]}, {"id": 2, "category_id": stuff_ids[1]}]
            for segment_id, category, (x0, y0, x1, y1) in ((3, 1, (8, 6, 40, 50)), (4, 3, (50, 20, 90, 44))):
                x0, x1 = x0 + index, x1 + index
                ids[y0:y1, x0:x1] = segment_id
                segments.append({"id": segment_id, "category_id": category})
                instances.append({"id": len(instances) + 1, "image_id": image_id, "category_id": category,
                                  "iscrowd": 0, "area": float((x1 - x0) * (y1 - y0)),
                                  "bbox": [x0, y0, x1 - x0, y1 - y0],
                                  "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]})
            for segment in segments:
                ys, xs = np.nonzero(ids == segment["id"])
                segment.update(iscrowd=0, area=int(len(ys)), bbox=[int(xs.min()), int(ys.min()),
                                                                   int(xs.max() - xs.min() + 1),
                                                                   int(ys.max() - ys.min() + 1)])
            _write_png(os.path.join(coco, f"panoptic_{split}", name + ".png"), ids_to_rgb(ids))
            images.append({"id": image_id, "file_name": name + ".jpg", "height": height, "width": width})
            panoptic.append({"image_id": image_id, "file_name": name + ".png", "segments_info": segments})
        with open(os.path.join(coco, "annotations", f"panoptic_{split}.json"), "w") as f:
            json.dump({"images": images, "annotations": panoptic, "categories": categories}, f)
        with open(os.path.join(coco, "annotations", f"instances_{split}.json"), "w") as f:
            json.dump({"images": images, "annotations": instances,
                       "categories": [c for c in categories if c["isthing"]]}, f)
    return coco
