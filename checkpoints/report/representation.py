"""The minimax paper's Fig. 8: three fine-grained classes' penultimate features on the top three
principal components, CE against minimax, with how well they separate there."""
from __future__ import annotations

from sklearn.metrics import silhouette_score

from core.analysis.engine import Analyzer

from .common import markdown_table, plt, save_figure

THREE = ("T-shirt/top", "Pullover", "Shirt")  # Fashion-MNIST's closest trio (the paper: three Stanford Cars classes)


def pca_figures(analyzer: Analyzer) -> dict:
    """The `pca` analysis (all test classes, 2,000 images drawn with its seed) kept to the three
    classes, and their silhouette in the top three components and in the top two."""
    pca = analyzer.run("pca")
    names = analyzer.meta["class_names"]
    keep = [i for i, label in enumerate(pca["labels"]) if names[label] in THREE]
    coords = [pca["coords"][i] for i in keep]
    labels = [names[pca["labels"][i]] for i in keep]
    return {"name": analyzer.name, "explained": pca["explained"], "coords": coords, "labels": labels,
            "silhouette": float(silhouette_score(coords, labels)),
            "silhouette_2d": float(silhouette_score([c[:2] for c in coords], labels))}


def pca_table(models: list[dict]) -> str:
    return markdown_table(["model", "images of the three", "variance in PC1 / PC2 / PC3", "silhouette, 3 PCs",
                           "silhouette, 2 PCs"],
                          [[m["name"], len(m["labels"]), " / ".join(f"{v:.1%}" for v in m["explained"]),
                            f"{m['silhouette']:.3f}", f"{m['silhouette_2d']:.3f}"] for m in models])


def pca_claim(models: list[dict]) -> str:
    by = {m["name"]: m for m in models}
    ce, mm = by["ce"]["silhouette"], by["minimax"]["silhouette"]
    return (f"- **Minimax's features cluster the fine-grained classes in three components where CE's do not (minimax "
            f"paper Fig. 8)** {'matches' if mm > ce else '**does not hold**'}: silhouette of {', '.join(THREE)} in "
            f"the top three components, minimax {mm:.3f} against CE {ce:.3f} (1: apart, 0: overlapping).")


def pca_figure(models: list[dict]) -> None:
    """Fig. 8 as the paper draws it: the three classes in the top three components, per model."""
    fig = plt.figure(figsize=(4.5 * len(models), 4))
    for i, m in enumerate(models, 1):
        ax = fig.add_subplot(1, len(models), i, projection="3d")
        for j, name in enumerate(THREE):
            points = [c for c, label in zip(m["coords"], m["labels"]) if label == name]
            ax.scatter(*zip(*points), s=4, color=f"C{j}", label=name, alpha=0.6)
        ax.set(title=f"{m['name']} (silhouette {m['silhouette']:.2f})", xlabel="PC1", ylabel="PC2", zlabel="PC3")
    fig.axes[0].legend(fontsize=7, markerscale=3)
    save_figure(fig, "pca.png", 100)
    plt.close(fig)


def pca_body(models: list[dict]) -> str:
    pca_figure(models)
    return f"![three classes in three components](docs/reproduction/pca.png)\n\n{pca_table(models)}\n\n{pca_claim(models)}"
