"""PNG plots of a multi-task run's results.json."""

from __future__ import annotations

import os

import numpy as np

from research import report


def write_plots(summary: dict, workdir: str) -> list[str]:
    """PNG plots: per-task loss curves, task weights, UW sigmas, cross-stitch coefficients."""
    plt = report.pyplot()
    names, hist, written = summary["tasks"], summary["history"], []

    def save(fig, name):
        path = os.path.join(workdir, name)
        report.save_figure(fig, path, dpi=100)
        plt.close(fig)
        written.append(path)

    if hist["train_loss"]:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for ax, key in zip(axes, ("train_loss", "test_loss"), strict=True):
            values = np.asarray(hist[key]).mean(1)  # [epoch, task], mean over seeds
            for t, name in enumerate(names):
                ax.plot(np.arange(1, len(values) + 1), values[:, t], label=name)
            ax.set(yscale="log", xlabel="epoch", ylabel=key.replace("_", " "))
            ax.legend()
        fig.suptitle(f"{summary['arch']} / {summary['weighting']}: per-task losses")
        save(fig, "loss_curves.png")

        fig, ax = plt.subplots(figsize=(5, 3.5))
        weights = np.asarray(hist["weights"]).mean(1)
        for t, name in enumerate(names):
            ax.plot(np.arange(1, len(weights) + 1), weights[:, t], label=name)
        ax.set(xlabel="epoch", ylabel="mean loss weight", title=f"{summary['weighting']} weights")
        ax.legend()
        save(fig, "task_weights.png")

    if "sigmas" in summary:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        sig = np.exp(0.5 * np.asarray(hist["log_vars"])).mean(1)
        for t, name in enumerate(names):
            ax.plot(np.arange(1, len(sig) + 1), sig[:, t], label=name)
        ax.set(xlabel="epoch", ylabel="sigma_t", yscale="log", title="uncertainty weighting")
        ax.legend()
        save(fig, "uw_sigmas.png")

    if "cross_stitch" in summary:
        alphas = summary["cross_stitch"]
        fig, axes = plt.subplots(1, len(alphas), figsize=(4 * len(alphas), 3.5), squeeze=False)
        for layer, (ax, alpha) in enumerate(zip(axes[0], alphas, strict=True)):
            alpha = np.asarray(alpha)
            im = ax.imshow(alpha, vmin=0.0, vmax=max(1.0, alpha.max()), cmap="viridis")
            for (i, j), v in np.ndenumerate(alpha):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="k" if v > 0.5 else "w")
            ax.set(xticks=range(len(names)), yticks=range(len(names)), title=f"layer {layer}")
            ax.set_xticklabels(names)
            ax.set_yticklabels(names)
            ax.set(xlabel="from column", ylabel="into task")
            fig.colorbar(im, ax=ax)
        fig.suptitle("cross-stitch alpha (mean over channels)")
        save(fig, "cross_stitch.png")
    return written
