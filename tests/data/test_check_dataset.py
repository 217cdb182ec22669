"""tools/check_dataset.py scans a whole dataset and reports every planted fault with its path."""
import os

import numpy as np
from PIL import Image

from detectron2.data import DatasetCatalog
from tests.common import load_tool

from .trees import make_lip_tree

check_dataset = load_tool("check_dataset")


def _plant_faults(records):
    """Damage the first six samples, one way each (two of them: a file removed); the seventh stays sound.
    Returns {fault: path}."""
    truncated, resized, out_of_range, colour = records[0]["file_name"], *(r["sem_seg_file_name"] for r in records[1:4])
    with open(truncated, "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    Image.fromarray(np.zeros((39, 30), np.uint8)).save(resized)
    labels = np.array(Image.open(out_of_range))
    labels[3, 4] = 25  # LIP has 20 classes
    Image.fromarray(labels).save(out_of_range)
    Image.open(colour).convert("RGB").save(colour)
    missing_label, missing_image = records[4]["sem_seg_file_name"], records[5]["file_name"]
    os.remove(missing_label)
    os.remove(missing_image)
    return {"cannot be decoded": truncated, "is 30x39 (WxH) but its image": resized, "holds values [25]": out_of_range,
            "is a 'RGB' image": colour, "missing file": missing_label, "missing file ": missing_image}


def test_every_fault_is_reported_with_its_path(dataset_root, capsys):
    make_lip_tree(str(dataset_root), splits=(("train", 7), ("val", 2)), size=(40, 30))
    records = DatasetCatalog.get("lip_sem_seg_train")
    faults = _plant_faults(records)
    assert check_dataset.main(["lip_sem_seg_train"]) == 1  # with the progress bar (on stderr)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "lip_sem_seg_train: 6 problem(s), 2 of them missing files"
    for problem, path in faults.items():
        assert any(problem.strip() in line and repr(path) in line for line in lines[:-1]), (problem, lines)
    sound = records[6]
    assert not any(sound["image_id"] in line for line in lines)


def test_a_sound_dataset_passes_and_a_missing_one_is_named(dataset_root, capsys):
    make_lip_tree(str(dataset_root), splits=(("val", 3),))
    assert check_dataset.main(["lip_sem_seg_val"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "lip_sem_seg_val: 0 problem(s), 0 of them missing files"
    assert check_dataset.main(["lip_sem_seg_train", "no_such_dataset", "--no-progress"]) == 2
    out = capsys.readouterr().out
    assert "Dataset 'lip_sem_seg_train' is not available" in out and "Dataset 'no_such_dataset' is not registered" in out
