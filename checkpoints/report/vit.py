"""The same objectives on our ViT beside the CNN: table and verdicts."""
from __future__ import annotations


def vit_table(cnns: list[dict], vits: list[dict]) -> str:
    """The ViT trio beside the CNN trio: specificity (median SI, Phi, NTE) and its cost in accuracy."""
    lines = ["| objective | ViT accuracy (vs its CE) | CNN accuracy (vs its CE) | ViT median SI | CNN median SI | "
             "ViT Phi | CNN Phi | ViT NTE / log 9 | CNN NTE / log 9 |", "|---|---|---|---|---|---|---|---|---|"]
    cnn = {m["name"]: m for m in cnns}
    vit = {m["name"].removeprefix("vit_"): m for m in vits}
    for name in ("ce", "minimax", "lsg"):
        v, c = vit[name], cnn[name]
        lines.append(f"| {name} | {v['headline']['accuracy']:.2%} ({v['headline']['accuracy'] - vit['ce']['headline']['accuracy']:+.2%}) | "
                     f"{c['headline']['accuracy']:.2%} ({c['headline']['accuracy'] - cnn['ce']['headline']['accuracy']:+.2%}) | "
                     f"{v['selectivity']['median']:.3f} | {c['selectivity']['median']:.3f} | {v['headline']['phi']:.4f} | "
                     f"{c['headline']['phi']:.4f} | {v['nontarget_entropy']['fraction']:.3f} | {c['nontarget_entropy']['fraction']:.3f} |")
    return "\n".join(lines)


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
