"""Rich views of the teaching records (explain-gae, explain-clip, training traces).

Pure functions from the plain dicts built in ppo_cli.explain and ppo_cli.trace to Rich
renderables; nothing here computes a number that is not already in the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ppo_cli.render import Fit

GAE_FORMULAS = (
    "δ_t = r_t + γ·V(s_{t+1})·(1 − done_t) − V(s_t)   (TD error: how much better than V expected)\n"
    "A_t = δ_t + γ·λ·(1 − done_t)·A_{t+1}             (GAE, computed backward from the end)\n"
    "return_t = A_t + V(s_t)                           (the value target)"
)


def _f(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _yes(ok: bool) -> str:
    return "[yellow]yes[/]" if ok else "no"


def gae_table(result: dict[str, Any], title: str) -> Table:
    """One row per step, in the order GAE visits them: last step first."""
    table = Table(title=title, title_justify="left")
    for name in ("t", "reward", "value", "done", "next V", "δ", "γλ(1−d)·A_{t+1}", "A", "return"):
        table.add_column(name, justify="right")
    for row in result["rows"]:
        table.add_row(
            str(row["t"]),
            _f(row["reward"]),
            _f(row["value"]),
            "1" if row["done"] else "0",
            _f(row["next_value"]),
            _f(row["delta"]),
            _f(row["carried"]),
            f"[bold]{_f(row['advantage'])}[/]",
            _f(row["return"]),
        )
    table.caption = (
        f"γ = {result['gamma']:g}, λ = {result['lam']:g}, "
        f"value after the last step = {result['last_value']:g} (used only if it is not done)"
    )
    return table


def _p(x: float) -> str:
    """An operand: negative numbers in parentheses, so '− (−0.3)' reads right."""
    return f"({x:.3f})" if x < 0 else f"{x:.3f}"


def gae_arithmetic(result: dict[str, Any], max_steps: int = 8) -> Text:
    """The backward pass written out as arithmetic, step by step."""
    g, lam = result["gamma"], result["lam"]
    advantages = result["advantages"]
    lines = []
    for row in result["rows"][:max_steps]:
        t = row["t"]
        if row["done"]:
            flow = "   (done: nothing flows back from later steps)"
            carry = f"{row['delta']:.3f} + 0"
        elif t + 1 == len(advantages):
            flow = "   (last step, not done: V after it is the bootstrap value)"
            carry = f"{row['delta']:.3f} + 0"
        else:
            carry = f"{row['delta']:.3f} + {g:g}×{lam:g}×{_p(advantages[t + 1])}"
            flow = ""
        lines.append(
            f"t={t}: δ = {row['reward']:.3f} + {g:g}×{_p(row['next_value'])} − {_p(row['value'])}"
            f" = {row['delta']:.3f};   A = {carry} = {row['advantage']:.3f};   "
            f"return = {row['advantage']:.3f} + {_p(row['value'])} = {row['return']:.3f}{flow}"
        )
    if len(result["rows"]) > max_steps:
        lines.append(f"... {len(result['rows']) - max_steps} more steps in the table above")
    return Text("\n".join(lines))


def normalization_table(
    advantages: Sequence[float], normalized: Sequence[float], norm: dict[str, Any], title: str
) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("t", justify="right")
    table.add_column("A", justify="right")
    table.add_column("(A − mean) / (std + eps)", justify="right")
    for t, (a, z) in enumerate(zip(advantages, normalized, strict=True)):
        table.add_row(str(t), _f(a), _f(z))
    table.caption = normalization_caption(norm)
    return table


def normalization_caption(norm: dict[str, Any]) -> str:
    std = "undefined (one value)" if norm["std"] is None else f"{norm['std']:.4f}"
    return (
        f"over {norm['count']} step(s): mean = {norm['mean']:.4f}, std = {std} "
        f"({norm['std_convention']}), eps = {norm['eps']:g}"
    )


def explain_gae_view(result: dict[str, Any]) -> Group:
    return Group(
        Text("Generalized Advantage Estimation, the function training uses (gae.compute_gae)\n"),
        Text(GAE_FORMULAS + "\n", style="cyan"),
        Fit(gae_table(result, "Backward pass, one row per step")),
        gae_arithmetic(result),
        Text(""),
        Fit(
            normalization_table(
                result["advantages"],
                result["normalized_advantages"],
                result["normalization"],
                "Advantage normalization before the PPO loss (gae.normalize, as ppo_update does)",
            )
        ),
        Text(
            "In training, the mean and std come from every valid step of the batch "
            "(all its episodes), not from one trajectory.",
            style="dim",
        ),
    )


def explain_run_view(result: dict[str, Any]) -> Group:
    parts: list[RenderableType] = [
        Text(
            f"{result['batch_episodes']} sampled episodes ({result['batch_steps']} steps) from "
            f"{result['run']}, seed {result['seed']}; showing {len(result['episodes'])}.\n"
        ),
        Text(GAE_FORMULAS + "\n", style="cyan"),
    ]
    for k, ep in enumerate(result["episodes"], 1):
        answer = " ".join(ep["tokens"])
        mark = "[green]correct[/]" if ep["correct"] else "[red]wrong[/]"
        title = (
            f"Episode {k}: {escape(ep['question'])} → {escape(answer)}  "
            f"(target {escape(ep['target'])}, {mark}, total reward {ep['total_reward']:.2f})"
        )
        parts.append(Fit(gae_table(ep, title)))
        parts.append(gae_arithmetic(ep))
        parts.append(
            Fit(
                normalization_table(
                    ep["advantages"],
                    ep["normalized_advantages"],
                    result["normalization"],
                    "Normalized over the whole batch, as ppo_update does",
                )
            )
        )
        parts.append(Text(""))
    return Group(*parts)


def clip_table(example: dict[str, Any], title: str) -> Table:
    lo, hi = example["band"]
    table = Table(
        title=f"{title}  (band [{lo:g}, {hi:g}])",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for name in (
        "#",
        "old logp",
        "new logp",
        "p old→new",
        "r",
        "clip(r)",
        "A",
        "r·A",
        "clip·A",
        "min",
        "out",
    ):
        table.add_column(name, justify="right", no_wrap=True)
    for row in example["rows"]:
        table.add_row(
            str(row["sample"]),
            _f(row["old_logprob"]),
            _f(row["new_logprob"]),
            f"{row['old_prob']:.2f}→{row['new_prob']:.2f}",
            _f(row["ratio"]),
            _f(row["clipped_ratio"]),
            _f(row["advantage"]),
            _f(row["unclipped"]),
            _f(row["clipped"]),
            f"[bold]{_f(row['objective'])}[/]",
            _yes(row["outside_band"]),
        )
    table.caption = (
        f"objective = mean(min) = {example['objective']:.4f};  "
        f"policy loss (what ppo_loss minimizes) = −mean(min) = {example['policy_loss']:.4f};  "
        f"clipfrac = {example['clipfrac']:.2f}"
    )
    table.caption_justify = "left"
    return table


CLIP_FORMULAS = (
    "ratio = π_new(a|s) / π_old(a|s) = exp(new log p − old log p)\n"
    "objective = min(ratio·A, clip(ratio, 1−ε, 1+ε)·A);  policy loss = −mean(objective)"
)


def explain_clip_view(examples: Sequence[dict[str, Any]]) -> Group:
    parts: list[RenderableType] = [
        Text("The PPO clipped objective, computed by ppo.ppo_loss (the training loss)\n"),
        Text(CLIP_FORMULAS + "\n", style="cyan"),
    ]
    for ex in examples:
        parts.append(Fit(clip_table(ex, ex.get("title", "Your numbers"))))
        parts.append(Text("\n".join(f"  #{r['sample']}: {r['why']}" for r in ex["rows"]) + "\n"))
    return Group(*parts)


# ---------------------------------------------------------------- training traces


def trace_view(record: dict[str, Any]) -> Group:
    """All tables of one traced iteration."""
    it = record["iteration"]
    parts: list[RenderableType] = [Text(f"── trace of iteration {it} ──", style="bold magenta")]
    if record.get("episodes"):
        parts.append(Fit(trace_episodes_table(record)))
    if record.get("steps"):
        parts.append(Fit(trace_steps_table(record)))
    if record.get("clipping"):
        parts.append(Fit(trace_clip_table(record)))
    if record.get("epochs"):
        parts.append(Fit(trace_epochs_table(record)))
    return Group(*parts)


def trace_episodes_table(record: dict[str, Any]) -> Table:
    eps = record["episodes"]
    table = Table(
        title=f"Iteration {record['iteration']}: episodes (showing {len(eps)} of "
        f"{record['batch_episodes']})",
        title_justify="left",
    )
    text = record.get("kind") == "text-qa"
    table.add_column("#", justify="right")
    table.add_column("question" if text else "first observation")
    table.add_column("generated tokens" if text else "actions")
    table.add_column("per-step rewards", justify="right")
    split = "score" in (eps[0] if eps else {})  # RLHF: total = score + KL penalty
    if split:
        table.add_column("score", justify="right")
        table.add_column("KL penalty", justify="right")
    table.add_column("total", justify="right")
    if text:
        table.add_column("correct", justify="center")
    for ep in eps:
        cells = [
            str(ep["episode"]),
            escape(ep["question"]),
            escape(" ".join(ep["tokens"])),
            ", ".join(f"{r:+.2f}" if split else f"{r:+.1f}" for r in ep["rewards"]),
        ]
        if split:
            cells += [f"{ep['score']:+.2f}", f"{ep['kl_penalty']:+.3f}"]
        cells.append(f"{ep['total']:+.2f}")
        if text:
            cells.append("[green]yes[/]" if ep["correct"] else "[red]no[/]")
        table.add_row(*cells)
    if not text:
        table.caption = "episodes that ended in this rollout; '+': it may have begun earlier"
    elif split:
        table.caption = (
            f"reward per step = score − kl_coef·KL_t, kl_coef = {record.get('kl_coef', 0):g}; "
            "the task score comes at the last step"
        )
    return table


def trace_steps_table(record: dict[str, Any]) -> Table:
    norm = record["normalization"]
    table = Table(
        title=f"Iteration {record['iteration']}: advantages (the update's own numbers)",
        title_justify="left",
    )
    label = record.get("step_label", "token")
    split = bool(record["steps"]) and "score" in record["steps"][0]  # RLHF reward split
    names = ["#", "t", label] + (["score", "KL_t", "−C·KL_t"] if split else [])
    for name in names + ["reward", "done", "value", "δ", "A", "return", "normalized A"]:
        table.add_column(name, justify="right")
    for row in record["steps"]:
        parts = [_f(row["score"]), _f(row["kl"]), _f(row["kl_penalty"])] if split else []
        table.add_row(
            str(row["episode"]),
            str(row["t"]),
            escape(str(row["label"])),
            *parts,
            _f(row["reward"]),
            "1" if row["done"] else "0",
            _f(row["value"]),
            _f(row["delta"]),
            _f(row["advantage"]),
            _f(row["return"]),
            _f(row["normalized"]),
        )
    table.caption = "normalized " + normalization_caption(norm)
    return table


def _short(text: str, width: int = 9) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_TOOK = {"clipped": "clip·A", "unclipped": "r·A", "equal": "="}


def trace_clip_table(record: dict[str, Any]) -> Table:
    """Compact on purpose: twelve numbers per row must fit an 100-column terminal."""
    clip = record["clipping"]
    eps = clip["clip_coef"]
    table = Table(
        title=f"Iteration {record['iteration']}: clipping, ε = {eps:g}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for name in (
        "ep/mb",
        "sample",
        "action",
        "old logp",
        "new logp",
        "r",
        "A",
        "r·A",
        "clip·A",
        "min",
        "out",
    ):
        table.add_column(name, justify="right", no_wrap=True)
    for row in clip["rows"]:
        table.add_row(
            f"{row['epoch']}/{row['minibatch']}",
            escape(str(row["sample"])),
            escape(_short(str(row["action"]))),
            _f(row["old_logprob"]),
            _f(row["new_logprob"]),
            _f(row["ratio"]),
            _f(row["advantage"]),
            _f(row["unclipped"]),
            _f(row["clipped"]),
            _TOOK.get(row["chosen"], row["chosen"]),
            _yes(row["is_clipped"]),
        )
    table.caption = (
        f"{clip['selection']}. r = exp(new logp − old logp), the new policy as this "
        "minibatch's loss saw it (before its gradient step); A as the loss used it "
        "(normalized); min: the term min() kept; out: |r − 1| > ε, as clipfrac counts."
    )
    table.caption_justify = "left"
    return table


def trace_epochs_table(record: dict[str, Any]) -> Table:
    table = Table(title=f"Iteration {record['iteration']}: per epoch", title_justify="left")
    for name in (
        "epoch",
        "loss",
        "policy loss",
        "value loss",
        "entropy",
        "approx_kl",
        "clipfrac",
    ):
        table.add_column(name, justify="right")
    for row in record["epochs"]:
        table.add_row(
            str(row["epoch"]),
            _f(row["loss"], 4),
            _f(row["policy_loss"], 4),
            _f(row["value_loss"], 4),
            _f(row["entropy"], 4),
            _f(row["approx_kl"], 5),
            _f(row["clipfrac"], 3),
        )
    table.caption = "means over the epoch's minibatches (ppo_update's own numbers)"
    return table
