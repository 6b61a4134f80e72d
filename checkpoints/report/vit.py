"""The same objectives on our ViT beside the CNN: table and verdicts."""
from __future__ import annotations

from .common import markdown_table


def vit_table(cnns: list[dict], vits: list[dict]) -> str:
    """The ViT trio beside the CNN trio: specificity (median SI, Phi, NTE) and its cost in accuracy."""
    cnn = {m["name"]: m for m in cnns}
    vit = {m["name"].removeprefix("vit_"): m for m in vits}
    accuracy = lambda family, name: (f"{family[name]['headline']['accuracy']:.2%} "  # noqa: E731
                                     f"({family[name]['headline']['accuracy'] - family['ce']['headline']['accuracy']:+.2%})")
    header = ["objective", "ViT accuracy (vs its CE)", "CNN accuracy (vs its CE)", "ViT median SI", "CNN median SI",
              "ViT Phi", "CNN Phi", "ViT NTE / log 9", "CNN NTE / log 9"]
    return markdown_table(header, [
        [name, accuracy(vit, name), accuracy(cnn, name), f"{vit[name]['selectivity']['median']:.3f}",
         f"{cnn[name]['selectivity']['median']:.3f}", f"{vit[name]['headline']['phi']:.4f}",
         f"{cnn[name]['headline']['phi']:.4f}", f"{vit[name]['nontarget_entropy']['fraction']:.3f}",
         f"{cnn[name]['nontarget_entropy']['fraction']:.3f}"] for name in ("ce", "minimax", "lsg")])


def vit_verdict(cnns: list[dict], vits: list[dict]) -> str:
    """The answer in words, each clause decided by the numbers."""
    cnn = {m["name"]: m for m in cnns}
    vit = {m["name"].removeprefix("vit_"): m for m in vits}
    si = {k: m["selectivity"]["median"] for k, m in vit.items()}
    cnn_si = {k: cnn[k]["selectivity"]["median"] for k in vit}
    phi = {k: m["headline"]["phi"] for k, m in vit.items()}
    cost = {k: vit[k]["headline"]["accuracy"] - vit["ce"]["headline"]["accuracy"] for k in ("minimax", "lsg")}
    minimax = ("yes" if si["minimax"] > si["ce"] + 0.05 else "no") + \
        f": the ViT's median SI goes {si['ce']:.3f} -> {si['minimax']:.3f} (the CNN's {cnn_si['ce']:.3f} -> {cnn_si['minimax']:.3f})"
    gate = ("yes" if phi["lsg"] < phi["ce"] else "no") + \
        f": the ViT's Phi goes {phi['ce']:.4f} -> {phi['lsg']:.4f} (the CNN's {cnn['ce']['headline']['phi']:.4f} -> {cnn['lsg']['headline']['phi']:.4f})"
    gap = vit["ce"]["headline"]["accuracy"] - cnn["ce"]["headline"]["accuracy"]
    return (f"- **Does the minimax loss make a ViT's units class-specific?** {minimax}.\n"
            f"- **Does LSG make its filters less ambiguous?** {gate}.\n"
            f"- **At what cost?** Accuracy against the ViT's own CE: minimax {100 * cost['minimax']:+.2f} points, "
            f"LSG {100 * cost['lsg']:+.2f} points; the ViT's CE is {100 * gap:+.2f} points from the CNN's CE (a shorter "
            "schedule on a CPU, and no convolutional prior).")
