"""The bundled models' plots: selectivity, trajectories, faithfulness, non-target entropy, noise,
unit ablation, p_t, and Table 7's influential maps."""
from __future__ import annotations

from .common import OUT, plt, save_figure


def si_histogram(rows: list[dict], filename: str, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    edges = [i / 20 for i in range(21)]
    for r in rows:
        ax.stairs(r["si_histogram"], edges, label=f"{r['name']} (median {r['selectivity']['median']:.2f})", linewidth=2)
    ax.set(xlabel="selectivity index", ylabel="units", title=title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, filename, 120)
    plt.close(fig)


def plots(models: list[dict], full: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    si_histogram(models, "selectivity.png", "Unit selectivity, Fashion-MNIST test set")

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for m in models:
        epochs = [e["epoch"] for e in m["trajectory"]]
        for ax, key in zip(axes, ("median_selectivity", "nontarget_fraction", "accuracy")):
            ax.plot(epochs, [e[key] for e in m["trajectory"]], label=m["name"])
    for ax, title in zip(axes, ("median SI", "non-target entropy / log 9", "test accuracy")):
        ax.set(xlabel="epoch", title=title)
    axes[2].set_ylim(0.80, 0.96)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, "trajectory.png", 120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
    maps = list(models[0]["faithfulness"])
    width = 0.8 / len(models)
    for ax, measure, title in zip(axes, ("deletion", "insertion"), ("deletion AUC (lower is better)",
                                                                     "insertion AUC (higher is better)")):
        for i, m in enumerate(models):
            ax.bar([k + i * width for k in range(len(maps))], [m["faithfulness"][name][measure]["mean"] for name in maps],
                   width, label=m["name"], color=f"C{i}")
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(maps))], [models[0]["faithfulness"][n]["label"].split(" (")[0]
                                                                       for n in maps], fontsize=8)
        ax.set(title=title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, "faithfulness.png", 120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([m["name"] for m in models], [m["nontarget_entropy"]["mean"] for m in models])
    ax.axhline(models[0]["nontarget_entropy"]["bound"], color="red", linestyle="--", label="log 9")
    ax.set(ylabel="nats", title="Mean non-target entropy")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, "nontarget_entropy.png", 120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(models)
    modes = ["gaussian", "matched", "zero"]
    for i, m in enumerate(models):
        for j, which in enumerate(("influential", "non_influential")):
            xs = [k * 2 + j + i * width for k in range(3)]
            ax.bar(xs, [m["noise_ablation"][mode][which] for mode in modes], width,
                   label=f"{m['name']}" if j == 0 else None, color=f"C{i}", alpha=1.0 if j == 0 else 0.5)
    ax.set_xticks([k * 2 + 0.5 for k in range(3)], [f"{mode}\n(infl. | non-infl.)" for mode in modes])
    ax.set(ylabel="test accuracy", title="Replacing influential vs non-influential features")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, "noise_ablation.png", 120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.2), sharey=True)
    for ax, m in zip(axes, models):
        ax.scatter(m["selectivity"]["per_unit"], m["max_class_drop"], s=12)
        ax.set(title=f"{m['name']}: rho {m['headline']['rho_drop_selectivity']:.2f}", xlabel="selectivity")
    axes[0].set_ylabel("largest class-accuracy drop")
    fig.tight_layout()
    save_figure(fig, "unit_ablation.png", 120)
    plt.close(fig)

    if full:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        pts = [r["p_t"] for r in full]
        ax.plot(pts, [r["selectivity"]["median"] for r in full], "o-", label="median SI")
        ax.plot(pts, [r["nontarget_entropy"]["fraction"] for r in full], "s-", label="non-target entropy / log 9")
        ax.plot(pts, [r["headline"]["accuracy"] for r in full], "^-", label="test accuracy")
        ax.invert_xaxis()
        ax.set(xlabel="p_t", title="Minimax p_t (10-epoch schedule)")
        ax.legend()
        fig.tight_layout()
        save_figure(fig, "pt_full.png", 120)
        plt.close(fig)


def influential_maps_figure(models: list[dict]) -> None:
    """Table 7's pictures for the CE/minimax/LSG trio: one class's three mean maps over its first
    test image, on one scale per model, drawn as the Ablations page draws them."""
    from core.data import dataset_image, view_of
    from core.render import overlays_on
    shown = [m for m in models if m["name"] in ("ce", "minimax", "lsg") and m.get("influential_maps")]
    if not shown:
        return
    fig, axes = plt.subplots(len(shown), 3, figsize=(7.5, 2.6 * len(shown)), squeeze=False)
    for row, m in zip(axes, shown):
        result = m["influential_maps"]
        image, _ = dataset_image(m["view"]["dataset"], result["example"], view=view_of(m["view"]))
        for ax, picture, group in zip(row, overlays_on(image, result["maps"]), result["groups"]):
            ax.imshow(picture)
            ax.set_title(f"{m['name']}: {group}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    save_figure(fig, "influential_maps.png", 110)
    plt.close(fig)
