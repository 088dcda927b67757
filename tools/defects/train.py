"""Train the NEU-DET defect model from scratch on the CPU (two threads) and export it to ONNX.

    .venv/bin/pip install -r requirements-train.txt
    .venv/bin/python -m tools.defects.train --out shared/defects/model/neu_det.onnx

With ``pretrained.py``, the only modules that import torch (a training dependency, never needed at
request time). By default nothing is pretrained: every weight starts from a seeded random
initialisation. ``--backbone ppocr`` starts the backbone from PP-OCRv4's text detector instead
(tried, not kept: the model card's rows "p40" and "p70").

The network (``DefectNet``) is a small fully convolutional ResNet-style backbone over the
200 x 200 grey image (strides 4, 8, 16, 32) with
- a classification head: global average pooling of the stride-16 and stride-32 features, a
  linear layer, softmax over the six classes;
- a CenterNet-style localisation head at stride 8 (25 x 25 cells, fed by a small feature
  pyramid): a per-class heatmap of defect centres (focal loss on Gaussian targets) and, per
  cell, the centre's sub-cell offset and the box's log width and height (L1 loss), and a
  GIoU loss on the boxes decoded at every cell of each box's central region (TTFNet-style,
  ``--giou-weight``). ``--head-stride 4`` puts it on 50 x 50 cells instead (tried, not kept:
  the model card).
The exported graph decodes offsets and sizes into boxes (``cx, cy, w, h`` in input pixels) and
applies softmax and sigmoid, so its outputs are exactly the contract of ``model.py``.

Augmentation (``augment.py``): the 8 flips/transposes of the square, a random zoom-in crop
(1.0-1.3x), brightness and contrast jitter and mild Gaussian noise; boxes follow. ``--mosaic P``
makes a share P of the images a mosaic of four (YOLO's, at the images' own scale), until the last
``--close-mosaic`` epochs. Training uses the ``train`` split;
``val`` is reported every few epochs (and picks the score threshold in ``evaluate.py``); the
``test`` split is never read here.
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.defects.model import LABELS, SHIPPED_MODEL
from tools.defects.augment import augment, jitter, mosaic, reshape
from tools.defects.dataset import DATA_DIR, Sample, load_samples
from tools.defects.pretrained import PpocrBackbone

SIZE = 200
BACKBONES = ("scratch", "ppocr")  # --backbone: random initialisation, or PP-OCRv4's text detector (pretrained.py)
HEAD_STRIDES = (8, 4)  # the localisation head's cell size in pixels: 25 x 25 or 50 x 50 cells (--head-stride)
NUM_CLASSES = len(LABELS)
ONE_HOT = np.eye(NUM_CLASSES, dtype=np.float32)  # a class index's target probabilities
BOX_AREA = 0.54  # TTFNet's beta: the central part of a box whose cells regress it (--giou-weight)


# --- network ---------------------------------------------------------------------------------


def conv_bn(cin: int, cout: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """Two 3x3 convolutions with an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class ScratchBackbone(nn.Module):
    """The grey 0..255 image in, features at strides 4 (50 x 50), 8, 16 and 32 (7 x 7) out; randomly initialised."""

    def __init__(self, widths: tuple[int, int, int, int, int]) -> None:
        super().__init__()
        c2, c4, c8, c16, c32 = widths
        self.widths = widths[1:]
        self.stem = nn.Sequential(conv_bn(1, c2, 2), conv_bn(c2, c4, 2), Residual(c4))
        self.stage8 = nn.Sequential(conv_bn(c4, c8, 2), Residual(c8), Residual(c8))
        self.stage16 = nn.Sequential(conv_bn(c8, c16, 2), Residual(c16), Residual(c16))
        self.stage32 = nn.Sequential(conv_bn(c16, c32, 2), Residual(c32))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        f4 = self.stem((image - 128.0) / 64.0)
        f8 = self.stage8(f4)
        f16 = self.stage16(f8)
        return [f4, f8, f16, self.stage32(f16)]


class DefectNet(nn.Module):
    """Backbone (strides 4-32), classification head and a CenterNet head at ``head_stride``; raw outputs.

    At stride 4 the pyramid goes one level further: the stride-8 features, narrowed to
    ``fine`` channels, upsampled and added to the stem's (stride 4), and the heads run there.
    """

    def __init__(
        self,
        widths: tuple[int, int, int, int, int] = (16, 32, 64, 96, 128),
        neck: int = 64,
        head_stride: int = 8,
        fine: int = 32,
        agnostic: bool = False,
        backbone: str = "scratch",
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone}")
        if head_stride not in HEAD_STRIDES:
            raise ValueError(f"head stride must be one of {HEAD_STRIDES}, got {head_stride}")
        self.head_stride = head_stride
        self.backbone: nn.Module = ScratchBackbone(widths) if backbone == "scratch" else PpocrBackbone()
        c4, c8, c16, c32 = self.backbone.widths
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(c16 + c32, NUM_CLASSES))
        self.lateral8 = nn.Conv2d(c8, neck, 1)
        self.lateral16 = nn.Conv2d(c16, neck, 1)
        self.lateral32 = nn.Conv2d(c32, neck, 1)
        self.neck = conv_bn(neck, neck)
        head = neck
        if head_stride == 4:
            self.lateral4 = nn.Conv2d(c4, fine, 1)
            self.narrow8 = nn.Conv2d(neck, fine, 1)
            self.neck4 = conv_bn(fine, fine)
            head = fine
        self.heat = nn.Sequential(conv_bn(head, head), nn.Conv2d(head, 1 if agnostic else NUM_CLASSES, 1))
        self.regression = nn.Sequential(conv_bn(head, head), nn.Conv2d(head, 4, 1))
        heat_out = self.heat[-1]
        assert isinstance(heat_out, nn.Conv2d) and heat_out.bias is not None
        nn.init.constant_(heat_out.bias, -math.log((1 - 0.1) / 0.1))  # a prior of 0.1 per cell

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f4, f8, f16, f32 = self.backbone(image)
        logits = self.classifier(torch.cat([f16.mean((2, 3)), f32.mean((2, 3))], 1))
        p16 = self.lateral16(f16) + F.interpolate(self.lateral32(f32), size=f16.shape[2:], mode="nearest")
        p8 = self.lateral8(f8) + F.interpolate(p16, size=f8.shape[2:], mode="nearest")
        features = self.neck(p8)
        if self.head_stride == 4:
            p4 = self.lateral4(f4) + F.interpolate(self.narrow8(features), size=f4.shape[2:], mode="nearest")
            features = self.neck4(p4)
        return logits, self.heat(features), self.regression(features)


class ExportedNet(nn.Module):
    """The contract's outputs: class probabilities, centre heatmap, decoded boxes."""

    def __init__(self, net: DefectNet) -> None:
        super().__init__()
        self.net = net
        self.stride = net.head_stride
        self.register_buffer("grid", cell_grid(SIZE // self.stride)[None])  # 1, 2, G, G

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, heat, regression = self.net(image)
        centres = (self.grid + regression[:, :2]) * self.stride
        sizes = torch.exp(regression[:, 2:].clamp(-4.0, 4.0)) * self.stride
        probs = torch.softmax(logits, 1)
        heat = torch.sigmoid(heat)
        if heat.shape[1] == 1:  # one class-agnostic heatmap: each class's is it times the class's probability
            heat = heat * probs[:, :, None, None]
        return probs, heat, torch.cat([centres, sizes], 1)


def cell_grid(cells: int) -> torch.Tensor:
    """Each cell's column and row (2, cells, cells)."""
    ys, xs = torch.meshgrid(torch.arange(cells, dtype=torch.float32), torch.arange(cells, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys])


# --- targets and losses ------------------------------------------------------------------------


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius (in cells) within which a centre shift keeps IoU >= ``min_overlap``."""
    a1, b1 = 1, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def make_targets(boxes: np.ndarray, labels: np.ndarray, stride: int) -> tuple[np.ndarray, ...]:
    """Heatmap (C, G, G), regression targets (4, G, G), their mask (G, G), and the dense box targets.

    Boxes are in 200 x 200 pixels; a cell is ``stride`` pixels (G = 200 / stride). The dense targets (for ``--giou-weight``) are each cell's
    box ``x1, y1, x2, y2`` in cells (4, G, G) and its weight (G, G): TTFNet's elliptical Gaussian
    over the central ``BOX_AREA`` of the box, normalised to sum 1 per box (smaller boxes win).
    """
    cells = SIZE // stride
    heat = np.zeros((NUM_CLASSES, cells, cells), np.float32)
    regression = np.zeros((4, cells, cells), np.float32)
    mask = np.zeros((cells, cells), np.float32)
    dense = np.zeros((4, cells, cells), np.float32)
    weight = np.zeros((cells, cells), np.float32)
    ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float32)
    for (x, y, w, h), label in zip(boxes, labels, strict=True):
        cx, cy = (x + w / 2) / stride, (y + h / 2) / stride
        col, row = min(int(cx), cells - 1), min(int(cy), cells - 1)
        radius = max(0.0, gaussian_radius(h / stride, w / stride))
        sigma = (2 * int(radius) + 1) / 6
        blob = np.exp(-((xs - col) ** 2 + (ys - row) ** 2) / (2 * sigma**2))
        heat[label] = np.maximum(heat[label], blob)
        heat[label, row, col] = 1.0
        regression[:, row, col] = (cx - col, cy - row, math.log(w / stride), math.log(h / stride))
        mask[row, col] = 1.0
    for index in np.argsort(-(boxes[:, 2] * boxes[:, 3])) if len(boxes) else []:  # largest first: small ones overwrite
        x, y, w, h = boxes[index] / stride
        cx, cy = x + w / 2, y + h / 2
        col, row = min(int(cx), cells - 1), min(int(cy), cells - 1)
        sx, sy = max(BOX_AREA * w / 6, 0.25), max(BOX_AREA * h / 6, 0.25)
        region = np.exp(-((xs + 0.5 - cx) ** 2 / (2 * sx**2) + (ys + 0.5 - cy) ** 2 / (2 * sy**2)))
        region *= (np.abs(xs + 0.5 - cx) <= max(BOX_AREA * w / 2, 0.5)) & (np.abs(ys + 0.5 - cy) <= max(BOX_AREA * h / 2, 0.5))
        region[row, col] = max(region[row, col], 1.0)
        region /= region.sum()
        chosen = region > 0
        dense[:, chosen] = np.array([x, y, x + w, y + h], np.float32)[:, None]
        weight[chosen] = region[chosen]
    return heat, regression, mask, dense, weight


def giou_loss(regression: torch.Tensor, dense: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """1 - GIoU of each weighted cell's decoded box (as exported) with its target box, per box."""
    xs, ys = cell_grid(regression.shape[-1])
    cx, cy = xs + regression[:, 0], ys + regression[:, 1]
    half = torch.exp(regression[:, 2:].clamp(-4.0, 4.0)) / 2
    x1, y1, x2, y2 = cx - half[:, 0], cy - half[:, 1], cx + half[:, 0], cy + half[:, 1]
    t1, u1, t2, u2 = dense.unbind(1)
    inter = (torch.min(x2, t2) - torch.max(x1, t1)).clamp(min=0) * (torch.min(y2, u2) - torch.max(y1, u1)).clamp(min=0)
    union = (x2 - x1) * (y2 - y1) + (t2 - t1) * (u2 - u1) - inter
    hull = (torch.max(x2, t2) - torch.min(x1, t1)) * (torch.max(y2, u2) - torch.min(y1, u1))
    giou = inter / union.clamp(min=1e-6) - (hull - union) / hull.clamp(min=1e-6)
    return ((1 - giou) * weight).sum() / weight.sum().clamp(min=1)


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, normalised by the number of centres."""
    pred = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    negative_weight = (1 - target) ** 4
    pos_loss = torch.log(pred) * (1 - pred) ** 2 * positive
    neg_loss = torch.log(1 - pred) * pred**2 * negative_weight * (1 - positive)
    return -(pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp(min=1)


def read_grey(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot read {path}")
    if image.shape != (SIZE, SIZE):
        image = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return image


def batch_tensors(
    samples: list[Sample],
    images: list[np.ndarray],
    rng: np.random.Generator | None,
    stride: int,
    mosaic_share: float = 0.0,
    pool: tuple[list[Sample], list[np.ndarray]] | None = None,
) -> tuple[torch.Tensor, ...]:
    """Images, class targets (probabilities), heatmaps, regression targets and masks of one batch.

    With ``rng`` the images are augmented, and a ``mosaic_share`` of them become a mosaic with three
    others drawn from ``pool``; a mosaic's class target is its parts' classes weighted by area.
    """
    xs, classes, heats, regs, masks, denses, weights = [], [], [], [], [], [], []
    for sample, image in zip(samples, images, strict=True):
        boxes, labels = sample.boxes, sample.box_labels
        target = ONE_HOT[sample.label]
        if rng is not None and pool is not None and rng.random() < mosaic_share:
            drawn = [(sample, image)] + [(pool[0][i], pool[1][i]) for i in rng.integers(0, len(pool[0]), 3)]
            parts = [reshape(part_image, part.boxes, part.box_labels, rng) for part, part_image in drawn]
            image, boxes, labels, shares = mosaic(parts, rng)
            image, boxes, labels = jitter(image, boxes, labels, rng)
            target = shares @ ONE_HOT[[part.label for part, _ in drawn]]
        elif rng is not None:
            image, boxes, labels = augment(image, boxes, labels, rng)
        classes.append(target)
        heat, reg, mask, dense, weight = make_targets(boxes, labels, stride)
        xs.append(np.asarray(image, np.float32))
        heats.append(heat)
        regs.append(reg)
        masks.append(mask)
        denses.append(dense)
        weights.append(weight)
    return (
        torch.from_numpy(np.stack(xs)[:, None]),
        torch.from_numpy(np.stack(classes)),
        torch.from_numpy(np.stack(heats)),
        torch.from_numpy(np.stack(regs)),
        torch.from_numpy(np.stack(masks)),
        torch.from_numpy(np.stack(denses)),
        torch.from_numpy(np.stack(weights)),
    )


def losses(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    images, classes, heat, reg, mask, dense, weight = batch
    logits, heat_logits, regression = net(images)
    mask4 = mask[:, None]
    n = mask.sum().clamp(min=1)
    return {
        "cls": F.cross_entropy(logits, classes, label_smoothing=0.05),
        "heat": focal_loss(heat_logits, heat if heat_logits.shape[1] == heat.shape[1] else heat.amax(1, keepdim=True)),
        "off": (F.l1_loss(regression[:, :2], reg[:, :2], reduction="none") * mask4).sum() / n,
        "size": (F.l1_loss(regression[:, 2:], reg[:, 2:], reduction="none") * mask4).sum() / n,
        "giou": giou_loss(regression, dense, weight),
        "logits": logits.detach(),
    }


# --- training ----------------------------------------------------------------------------------


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    cv2.setNumThreads(1)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train_set = load_samples(args.data, "train")
    val_set = load_samples(args.data, "val")
    train_images = [read_grey(sample.image_path) for sample in train_set]
    val_images = [read_grey(sample.image_path) for sample in val_set]
    print(f"train {len(train_set)} images, val {len(val_set)}; epochs {args.epochs}, batch {args.batch_size}", flush=True)

    net = DefectNet(head_stride=args.head_stride, agnostic=args.agnostic, backbone=args.backbone)
    ema = copy.deepcopy(net).eval()
    groups = [  # a pretrained backbone learns at --backbone-lr times the rate of the rest
        {"params": list(net.backbone.parameters()), "lr": args.lr * (args.backbone_lr if args.backbone != "scratch" else 1.0)},
        {"params": [p for name, p in net.named_parameters() if not name.startswith("backbone.")], "lr": args.lr},
    ]
    optimizer = torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    warmup = min(steps_per_epoch, total_steps // 10)

    def learning_rate_factor(step: int) -> float:  # linear warm-up, then cosine to 0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor)
    started = time.monotonic()
    step = 0
    for epoch in range(1, args.epochs + 1):
        net.train()
        order = rng.permutation(len(train_set))
        sums: dict[str, float] = {}
        for first in range(0, len(order), args.batch_size):
            chosen = order[first : first + args.batch_size]
            mosaic_share = args.mosaic if epoch <= args.epochs - args.close_mosaic else 0.0
            samples, images = [train_set[i] for i in chosen], [train_images[i] for i in chosen]
            batch = batch_tensors(samples, images, rng, args.head_stride, mosaic_share, (train_set, train_images))
            parts = losses(net, batch)
            loss = parts["cls"] + parts["heat"] + parts["off"] + parts["size"]
            if args.giou_weight:
                loss = loss + args.giou_weight * parts["giou"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            optimizer.step()
            scheduler.step()
            update_ema(ema, net, min(args.ema, (1 + step) / (10 + step)))
            step += 1
            for key in ("cls", "heat", "off", "size", "giou"):
                sums[key] = sums.get(key, 0.0) + parts[key].item() * len(chosen)
        report = " ".join(f"{key} {value / len(train_set):.3f}" for key, value in sums.items())
        line = f"epoch {epoch}/{args.epochs} {time.monotonic() - started:.0f}s lr {scheduler.get_last_lr()[0]:.5f} train: {report}"
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            line += " | val: " + validate(net, val_set, val_images, args.batch_size)
            line += " | val (ema): " + validate(ema, val_set, val_images, args.batch_size)
        print(line, flush=True)
    export(ema, args.out)
    print(f"trained in {time.monotonic() - started:.0f}s; wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)", flush=True)


@torch.no_grad()
def update_ema(ema: nn.Module, net: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * net for weights and BatchNorm statistics (counters copied)."""
    for averaged, current in zip(ema.state_dict().values(), net.state_dict().values(), strict=True):
        if averaged.dtype.is_floating_point:
            averaged.mul_(decay).add_(current.detach(), alpha=1 - decay)
        else:
            averaged.copy_(current)


@torch.no_grad()
def validate(net: DefectNet, samples: list[Sample], images: list[np.ndarray], batch_size: int) -> str:
    net.eval()
    sums: dict[str, float] = {}
    correct = 0
    for first in range(0, len(samples), batch_size):
        batch = batch_tensors(samples[first : first + batch_size], images[first : first + batch_size], None, net.head_stride)
        parts = losses(net, batch)
        correct += int((parts.pop("logits").argmax(1) == batch[1].argmax(1)).sum())
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(batch[1])
    return f"accuracy {correct / len(samples):.4f} " + " ".join(f"{key} {value / len(samples):.3f}" for key, value in sums.items())


def export(net: DefectNet, out: Path) -> None:
    """The ONNX file of the contract (input ``image`` [1, 1, 200, 200] float 0..255), checked with onnxruntime."""
    exported = ExportedNet(net).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (1, 1, SIZE, SIZE)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            exported,
            (example,),
            str(out),
            dynamo=False,
            input_names=["image"],
            output_names=["class_probs", "heatmap", "boxes"],
            opset_version=17,
        )
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = [tensor.numpy() for tensor in exported(example)]
    got = session.run(None, {"image": example.numpy()})
    worst = max(float(np.abs(a - b).max()) for a, b in zip(expected, got, strict=True))
    if worst > 1e-3:
        raise RuntimeError(f"onnxruntime disagrees with torch by {worst}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=SHIPPED_MODEL, help="ONNX file to write")
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="NEU-DET folder (images/, annotations/)")
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--ema", type=float, default=0.995, help="decay of the weights' exponential moving average")
    parser.add_argument(
        "--giou-weight",
        type=float,
        default=2.0,
        help="weight of a GIoU loss on the boxes decoded at every cell of each box's centre region "
        "(TTFNet-style dense regression, added to the L1 centre-cell losses; 0 = those only)",
    )
    parser.add_argument(
        "--head-stride",
        type=int,
        choices=HEAD_STRIDES,
        default=8,
        help="cell size of the localisation head in pixels (8: 25 x 25 cells, 4: 50 x 50)",
    )
    parser.add_argument("--mosaic", type=float, default=0.0, help="share of training images made a mosaic of four (0 = none)")
    parser.add_argument("--close-mosaic", type=int, default=15, help="the last this many epochs train without mosaics")
    parser.add_argument(
        "--agnostic",
        action="store_true",
        help="one class-agnostic centre heatmap, exported as each class's times the image's class probability",
    )
    parser.add_argument(
        "--backbone",
        choices=BACKBONES,
        default="scratch",
        help="scratch: a small ResNet from a random start; ppocr: PP-OCRv4's text detector backbone (pretrained.py), fine-tuned",
    )
    parser.add_argument("--backbone-lr", type=float, default=1.0, help="with a pretrained backbone, its learning rate as a share of --lr")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (120 epochs: 38 min with 2 on this 2-core machine)")
    parser.add_argument("--eval-every", type=int, default=5, help="report the val split every this many epochs")
    train(parser.parse_args(argv))


if __name__ == "__main__":
    main()
