"""What both medgen families read: the configured (or phantom) subjects split by subject, their
volumes checked once before Ray starts, and the datasets built from them. A family's `mode` here
is the diffusion mode whose files it reads (data.medgen.MODE_IMAGES): the compression family's
modes map onto those."""

from __future__ import annotations

from losstune.data.medgen import axial_slices, list_subjects, load_volumes
from losstune.data.medgen_modes import MODE_IMAGES, SIZE_CONDITIONED, binary_mode, modalities_for
from losstune.data.medgen_phantoms import phantom_folder
from losstune.trainables.config import ConfigError
from losstune.trainables.families.medgen.compression_config import image_sides


def subject_split(cfg, mode: str):
    """(train subjects, validation subjects) of the configured (or phantom) folders."""
    d = cfg.data
    path = d.path or phantom_folder(d.subjects, tuple(d.phantom_shape), d.seed)
    subjects = list_subjects(path, modalities_for(mode))
    if d.val_path:
        return subjects, list_subjects(d.val_path, modalities_for(mode))
    held_out = max(1, int(round(d.val_fraction * len(subjects))))
    if held_out >= len(subjects):
        raise ConfigError("data.path", f"{path}: {len(subjects)} subject(s) are too few to hold some out")
    return subjects[:-held_out], subjects[-held_out:]


def check_subjects(cfg, mode: str) -> int:
    """Every file read and checked once, before Ray starts, with the read a trial makes (which
    then finds it in data.medgen's cache); returns the number of training items (slices in 2D).
    Every set has items: each image volume reaches 1 once normalised (a blank one is refused as
    it is read), so no subject is all empty slices."""
    train_subjects, val_subjects = subject_split(cfg, mode)
    load_volumes(val_subjects, mode)
    return len(training_items(cfg, load_volumes(train_subjects, mode), mode))


def training_items(cfg, volumes: list[dict], mode: str) -> list[dict]:
    """What a dataset is built from: a 2D run's axial slices (without the empty ones, where the
    mode skips them: never in seg mode, where an "empty" slice is a tumour-free mask that must be
    learnt too), a 3D run's volumes."""
    if cfg.model.spatial_dims == 3:
        return volumes
    return axial_slices(volumes, cfg.data.skip_empty_slices and not binary_mode(mode))


def item_size(cfg) -> tuple[int, ...]:
    """An item's spatial size: data.image_size square in 2D, data.volume in 3D."""
    return image_sides(cfg.data, cfg.model.spatial_dims)[2]


def make_items(cfg, subjects, augment: bool, mode: str, aggressive: bool = False, with_spacing: bool = False,
               pool: bool = False):
    """The dataset of `subjects`; `aggressive`: the compression models' augmentation; `with_spacing`:
    each item with its voxel size in mm; `pool`: each image channel of an item an item of its own."""
    # here, not at the top: loads torch only where this runs
    from losstune.data.medgen_dataset import Items

    items = training_items(cfg, load_volumes(subjects, mode), mode)
    if pool or mode == "multi":  # multi: training and validation alike, its modality one-hot beside the mask
        items = [{**item, "image": item["image"][k:k + 1], "modality": k}
                 for item in items for k in range(len(item["image"]))]
    return Items(items, cfg.model.spatial_dims, item_size(cfg), augment, binary_mode(mode), seed=cfg.train.seed,
                 aggressive=aggressive, with_spacing=with_spacing, size_bins=SIZE_CONDITIONED.get(mode, ""),
                 modalities=len(MODE_IMAGES[mode]) if mode == "multi" else 0)
