"""LIIF's published checkpoint layout converts into our LIIF model with the same outputs.

The reference below is LIIF's public formulation written out with the public code's parameter
names (EDSR with its mean-shift constants, RDN, the `imnet.layers` MLP, the 4-shift query with
swapped areas), at small sizes; a checkpoint is saved as LIIF's train_liif.py saves one.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from arbiscale.cli.main import main
from arbiscale.geometry import coord_grid
from arbiscale.models.liif import LIIF
from arbiscale.models.loading import load_component


def conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class PublicResBlock(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(n, n), nn.ReLU(True), conv(n, n))

    def forward(self, x):
        return self.body(x) + x


class PublicEDSR(nn.Module):
    def __init__(self, n_resblocks: int, n_feats: int) -> None:
        super().__init__()
        self.sub_mean, self.add_mean = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)  # saved, never applied
        self.head = nn.Sequential(conv(3, n_feats))
        self.body = nn.Sequential(*[PublicResBlock(n_feats) for _ in range(n_resblocks)], conv(n_feats, n_feats))

    def forward(self, x):
        x = self.head(x)
        return self.body(x) + x


class PublicRDBConv(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv(cin, growth), nn.ReLU())

    def forward(self, x):
        return torch.cat((x, self.conv(x)), 1)


class PublicRDB(nn.Module):
    def __init__(self, g0: int, growth: int, num_convs: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[PublicRDBConv(g0 + c * growth, growth) for c in range(num_convs)])
        self.LFF = nn.Conv2d(g0 + num_convs * growth, g0, 1)

    def forward(self, x):
        return self.LFF(self.convs(x)) + x


class PublicRDN(nn.Module):
    def __init__(self, g0: int, blocks: int, num_convs: int, growth: int) -> None:
        super().__init__()
        self.SFENet1, self.SFENet2 = conv(3, g0), conv(g0, g0)
        self.RDBs = nn.ModuleList(PublicRDB(g0, growth, num_convs) for _ in range(blocks))
        self.GFF = nn.Sequential(nn.Conv2d(blocks * g0, g0, 1), conv(g0, g0))

    def forward(self, x):
        shallow = self.SFENet1(x)
        x = self.SFENet2(shallow)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        return self.GFF(torch.cat(outs, 1)) + shallow


class PublicLIIF(nn.Module):
    def __init__(self, encoder: nn.Module, channels: int, hidden: list[int]) -> None:
        super().__init__()
        self.encoder = encoder
        widths = [channels * 9 + 4, *hidden]
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.imnet = nn.Module()
        self.imnet.layers = nn.Sequential(*layers, nn.Linear(widths[-1], 3))

    def forward(self, inp, coord, cell):
        feat = self.encoder(inp)
        feat = F.unfold(feat, 3, padding=1).view(feat.shape[0], feat.shape[1] * 9, *feat.shape[2:])
        h, w = feat.shape[-2:]
        feat_coord = coord_grid((h, w)).t().reshape(1, 2, h, w).expand(feat.shape[0], 2, h, w)
        preds, areas = [], []
        for vx in (-1, 1):
            for vy in (-1, 1):
                shifted = coord.clone()
                shifted[:, :, 0] += vx / h + 1e-6
                shifted[:, :, 1] += vy / w + 1e-6
                shifted.clamp_(-1 + 1e-6, 1 - 1e-6)
                grid = shifted.flip(-1).unsqueeze(1)
                q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
                q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
                rel_coord = (coord - q_coord) * coord.new_tensor([h, w])
                rel_cell = cell * cell.new_tensor([h, w])
                preds.append(self.imnet.layers(torch.cat([q_feat, rel_coord, rel_cell], dim=-1)))
                areas.append(torch.abs(rel_coord[:, :, 0] * rel_coord[:, :, 1]) + 1e-9)
        total = torch.stack(areas).sum(dim=0)
        areas = [areas[3], areas[2], areas[1], areas[0]]
        return sum(pred * (area / total).unsqueeze(-1) for pred, area in zip(preds, areas))


def edsr_checkpoint() -> tuple[PublicLIIF, dict]:
    torch.manual_seed(0)
    model = PublicLIIF(PublicEDSR(2, 8), 8, [32, 32])
    args = {
        "encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True, "n_resblocks": 2, "n_feats": 8}},
        "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [32, 32]}},
    }
    return model, {"model": {"name": "liif", "args": args, "sd": model.state_dict()}, "optimizer": {"name": "adam"}, "epoch": 1000}


def rdn_checkpoint() -> tuple[PublicLIIF, dict]:
    torch.manual_seed(1)
    model = PublicLIIF(PublicRDN(8, 20, 6, 32), 8, [16])
    args = {"encoder_spec": {"name": "rdn", "args": {"no_upsampling": True, "G0": 8, "RDNconfig": "A"}}, "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [16]}}}
    return model, {"model": {"name": "liif", "args": args, "sd": model.state_dict()}, "epoch": 1}


def convert(tmp_path, checkpoint: dict, capsys) -> tuple[int, str]:
    torch.save(checkpoint, tmp_path / "epoch-last.pth")
    code = main(["convert", "liif", str(tmp_path / "epoch-last.pth"), "-o", str(tmp_path / "model")])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("make", [edsr_checkpoint, rdn_checkpoint], ids=["edsr-baseline", "rdn"])
def test_converted_checkpoint_gives_the_public_forward(tmp_path, capsys, make):
    public, checkpoint = make()
    code, err = convert(tmp_path, checkpoint, capsys)
    assert code == 0, err
    ours = load_component(LIIF, tmp_path / "model")
    generator = torch.Generator().manual_seed(0)
    lr = torch.rand(2, 3, 7, 9, generator=generator) * 2 - 1
    coord = torch.rand(2, 300, 2, generator=generator) * 2 - 1
    cell = torch.full((2, 300, 2), 2 / 30)
    pixels = coord_grid((30, 40)).unsqueeze(0).expand(2, -1, -1)
    with torch.no_grad():
        expected = public(lr, coord, cell)
        got = ours(lr, coord, cell)
        chunked = ours(lr, coord, cell, chunk_size=7)
        # the whole-grid render, in bands of rows and parts of rows (chunks of 13 queries), against LIIF's loop
        expected_image = public(lr, pixels, torch.full((2, 1200, 2), 0.0) + torch.tensor([2 / 30, 2 / 40])).clamp(-1, 1)
        upscaled = ours.upscale(lr, (30, 40), chunk_size=13)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    assert torch.allclose(chunked, expected, atol=1e-5), (chunked - expected).abs().max()
    assert upscaled.shape == (2, 3, 30, 40)
    assert torch.allclose(upscaled.flatten(2).transpose(1, 2), expected_image, atol=1e-5)


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda sd: sd.pop("imnet.layers.2.bias"), "missing key imnet.layers.2.bias"),
        (lambda sd: sd.__setitem__("encoder.tail.0.weight", torch.zeros(1)), "unexpected key encoder.tail.0.weight"),
        (lambda sd: sd.__setitem__("encoder.body.1.body.0.weight", torch.zeros(8, 8, 1, 1)), "key encoder.body.1.body.0.weight has shape (8, 8, 1, 1)"),
        (lambda sd: sd.__setitem__("imnet.layers.0.weight", torch.zeros(32, 70)), "key imnet.layers.0.weight has shape (32, 70)"),
    ],
    ids=["missing", "extra", "mis-shaped", "mis-shaped-first-layer"],
)
def test_a_damaged_checkpoint_is_refused_naming_the_key(tmp_path, capsys, damage, named):
    _, checkpoint = edsr_checkpoint()
    damage(checkpoint["model"]["sd"])
    code, err = convert(tmp_path, checkpoint, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and named in err, err
    assert not (tmp_path / "model").exists()


def test_other_files_are_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "epoch-last.pth").write_bytes(b"not a checkpoint")
    assert main(["convert", "liif", str(tmp_path / "epoch-last.pth"), "-o", str(tmp_path / "model")]) == 2
    assert "cannot read" in capsys.readouterr().err
    _, checkpoint = edsr_checkpoint()
    checkpoint["model"]["name"] = "metasr"
    code, err = convert(tmp_path, checkpoint, capsys)
    assert code == 2 and "'metasr'" in err
    _, checkpoint = edsr_checkpoint()
    (tmp_path / "model").mkdir()
    code, err = convert(tmp_path, checkpoint, capsys)
    assert code == 2 and "already exists" in err


def test_upscale_and_eval_run_a_converted_checkpoint(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    public, checkpoint = edsr_checkpoint()
    assert convert(tmp_path, checkpoint, capsys)[0] == 0
    pixels = np.random.RandomState(0).randint(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    assert main(["upscale", str(tmp_path / "in.png"), "-s", "2.5", "--model", str(tmp_path / "model"), "-o", str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "in_x2.5.png").size == (25, 30)
    assert main(["upscale", str(tmp_path / "in.png"), "-s", "2", "--num-samples", "2", "--model", str(tmp_path / "model"), "-o", str(tmp_path / "o2")]) == 2
    assert "one output per input" in capsys.readouterr().err
    Image.fromarray(np.random.RandomState(1).randint(0, 256, (48, 40, 3), dtype=np.uint8)).save(tmp_path / "hr.png")
    (tmp_path / "val.txt").write_text("hr.png\n")
    code = main(
        [
            "eval",
            "sr",
            "--model",
            str(tmp_path / "model"),
            "--data",
            str(tmp_path),
            "--split",
            str(tmp_path / "val.txt"),
            "--scales",
            "2",
            "--grid-images",
            "0",
            "--no-progress",
            "--out",
            str(tmp_path / "report"),
        ]
    )
    assert code == 0 and (tmp_path / "report" / "results.json").is_file()
