"""Rich views of the teaching records (the explain commands, compare, training traces): pure
functions from plain dicts to Rich renderables, computing no number the record does not hold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ppo_cli.render import Fit, columns_table

GAE_FORMULAS = (
    "δ_t = r_t + γ·V(s_{t+1})·(1 − done_t) − V(s_t)   (TD error: how much better than V expected)\n"
    "A_t = δ_t + γ·λ·(1 − done_t)·A_{t+1}             (GAE, computed backward from the end)\n"
    "return_t = A_t + V(s_t)                           (the value target)"
)


def _f(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _yes(ok: bool) -> str:
    return "[yellow]yes[/]" if ok else "no"


def _cells(row: dict[str, Any], keys: str, digits: int = 3) -> list[str]:
    return [_f(row[k], digits) for k in keys.split()]


def gae_table(result: dict[str, Any], title: str) -> Table:
    """One row per step, in the order GAE visits them: last step first."""
    table = columns_table(
        title, "t | reward | value | done | next V | δ | γλ(1−d)·A_{t+1} | A | return"
    )
    for row in result["rows"]:
        table.add_row(
            str(row["t"]),
            *_cells(row, "reward value"),
            "1" if row["done"] else "0",
            *_cells(row, "next_value delta carried"),
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
        carry, flow = f"{row['delta']:.3f} + 0", ""
        if row["done"]:
            flow = "   (done: nothing flows back from later steps)"
        elif t + 1 == len(advantages):
            flow = "   (last step, not done: V after it is the bootstrap value)"
        else:
            carry = f"{row['delta']:.3f} + {g:g}×{lam:g}×{_p(advantages[t + 1])}"
        lines.append(
            f"t={t}: δ = {row['reward']:.3f} + {g:g}×{_p(row['next_value'])} − {_p(row['value'])}"
            f" = {row['delta']:.3f};   A = {carry} = {row['advantage']:.3f};   "
            f"return = {row['advantage']:.3f} + {_p(row['value'])} = {row['return']:.3f}{flow}"
        )
    if len(result["rows"]) > max_steps:
        lines.append(f"... {len(result['rows']) - max_steps} more steps in the table above")
    return Text("\n".join(lines))


def normalization_table(steps: dict[str, Any], norm: dict[str, Any], title: str) -> Table:
    """A trajectory's advantages, and normalized by `norm` (its own, or its batch's)."""
    table = columns_table(title, "t | A | (A − mean) / (std + eps)")
    pairs = zip(steps["advantages"], steps["normalized_advantages"], strict=True)
    for t, (a, z) in enumerate(pairs):
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
    title = "Advantage normalization before the PPO loss (gae.normalize, as ppo_update does)"
    return Group(
        Text("Generalized Advantage Estimation, the function training uses (gae.compute_gae)\n"),
        Text(GAE_FORMULAS + "\n", style="cyan"),
        Fit(gae_table(result, "Backward pass, one row per step")),
        gae_arithmetic(result),
        Text(""),
        Fit(normalization_table(result, result["normalization"], title)),
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
        batch = "Normalized over the whole batch, as ppo_update does"
        normalized = normalization_table(ep, result["normalization"], batch)
        parts += [Fit(gae_table(ep, title)), gae_arithmetic(ep), Fit(normalized), Text("")]
    return Group(*parts)


def clip_table(example: dict[str, Any], title: str) -> Table:
    lo, hi = example["band"]
    columns = "# | old logp | new logp | p old→new | r | clip(r) | A | r·A | clip·A | min | out"
    table = columns_table(f"{title}  (band [{lo:g}, {hi:g}])", columns, compact=True)
    for row in example["rows"]:
        table.add_row(
            str(row["sample"]),
            *_cells(row, "old_logprob new_logprob"),
            f"{row['old_prob']:.2f}→{row['new_prob']:.2f}",
            *_cells(row, "ratio clipped_ratio advantage unclipped clipped"),
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
        why = "\n".join(f"  #{r['sample']}: {r['why']}" for r in ex["rows"]) + "\n"
        parts += [Fit(clip_table(ex, ex["title"])), Text(why)]
    return Group(*parts)


def trace_view(record: dict[str, Any]) -> Group:
    """All tables of one traced iteration."""
    tables = (
        ("episodes", trace_episodes_table),
        ("completion_groups", trace_groups_table),
        ("steps", trace_steps_table),
        ("clipping", trace_clip_table),
        ("epochs", trace_epochs_table),
    )
    head = Text(f"── trace of iteration {record['iteration']} ──", style="bold magenta")
    return Group(head, *(Fit(table(record)) for key, table in tables if record.get(key)))


def trace_episodes_table(record: dict[str, Any]) -> Table:
    eps = record["episodes"]
    text = record.get("kind") == "text-qa"
    split = "score" in (eps[0] if eps else {})  # RLHF: total = score + KL penalty
    asked = "question | generated tokens" if text else "first observation | actions"
    columns = f"# | {asked} | per-step rewards" + (" | score | KL penalty" if split else "")
    columns += " | total" + (" | correct" if text else "")
    title = f"Iteration {record['iteration']}: episodes (showing {len(eps)} of "
    table = columns_table(
        f"{title}{record['batch_episodes']})", columns, left=asked, center="correct"
    )
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
    label = record.get("step_label", "token")
    split = bool(record["steps"]) and "score" in record["steps"][0]  # RLHF reward split
    columns = f"# | t | {label}" + (" | score | KL_t | −C·KL_t" if split else "")
    columns += " | reward | done | value | δ | A | return | normalized A"
    title = f"Iteration {record['iteration']}: advantages (the update's own numbers)"
    table = columns_table(title, columns)
    for row in record["steps"]:
        table.add_row(
            str(row["episode"]),
            str(row["t"]),
            escape(str(row["label"])),
            *(_cells(row, "score kl kl_penalty") if split else []),
            _f(row["reward"]),
            "1" if row["done"] else "0",
            *_cells(row, "value delta advantage return normalized"),
        )
    table.caption = "normalized " + normalization_caption(norm)
    return table


def _short(text: str, width: int = 16) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_TOOK = {"clipped": "clip·A", "unclipped": "r·A", "equal": "="}


def trace_clip_table(record: dict[str, Any]) -> Table:
    """Compact on purpose: twelve numbers per row must fit an 100-column terminal."""
    clip = record["clipping"]
    eps = clip["clip_coef"]
    columns = "ep/mb | sample | action | old logp | new logp | r | A | r·A | clip·A | min | out"
    table = columns_table(f"Iteration {record['iteration']}: clipping, ε = {eps:g}", columns, True)
    for row in clip["rows"]:
        table.add_row(
            f"{row['epoch']}/{row['minibatch']}",
            escape(str(row["sample"])),
            escape(_short(str(row["action"]))),
            *_cells(row, "old_logprob new_logprob ratio advantage unclipped clipped"),
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
    columns = "epoch | loss | policy loss | value loss | entropy | approx_kl | clipfrac"
    table = columns_table(f"Iteration {record['iteration']}: per epoch", columns)
    for row in record["epochs"]:
        table.add_row(
            str(row["epoch"]),
            *_cells(row, "loss policy_loss value_loss entropy", 4),
            _f(row["approx_kl"], 5),
            _f(row["clipfrac"], 3),
        )
    table.caption = "means over the epoch's minibatches (ppo_update's own numbers)"
    return table


def explain_advantage_view(result: dict[str, Any]) -> Group:
    """explain-advantage: the groups' questions, one row per completion with the advantage
    under every estimator, and each formula worked on the first completion's numbers."""
    rows = result["rows"]
    head = Text(
        f"{result['groups']} question(s) x {result['group_size']} completions, seed "
        f"{result['seed']}, sampled from\n{result['run']}\n(trained with "
        f"{result['trained_with']}"
        + ("" if result["critic_trained"] else ": its critic is untrained")
        + ")"
    )
    # one line per group: its completions share the question
    seen = {r["group"]: f"group {r['group']}: {r['question']}  -> {r['target']}" for r in rows}
    questions = Text("\n".join(seen.values()))
    estimators = " | ".join(
        f"[bold]{name}[/]" for name in ("gae", "grpo", "dr_grpo", "rloo", "rf++")
    )
    columns = f"# | grp | answer | R | mean | std | V(s0) | {estimators}"
    table = columns_table("Advantage of each completion (first token)", columns, left="answer")
    for row in rows:
        table.add_row(
            str(row["completion"]),
            str(row["group"]),
            escape(row["answer"]),
            *_cells(row, "reward group_mean group_std value_0 adv_gae_normalized", 2),
            *_cells(row, "adv_grpo adv_dr_grpo adv_rloo adv_reinforce_pp", 2),
        )
    r = rows[0]
    norm = result["gae_normalization"]
    work = Text(
        f"Worked for completion 1 (R = {r['reward']:.2f}):\n"
        f"  grpo     (R - mean) / (std + {result['grpo_eps']:g}) = ({r['reward']:.2f} - "
        f"{r['group_mean']:.2f}) / {r['group_std']:.2f} = {r['adv_grpo']:.2f}\n"
        f"  dr_grpo  R - mean = {r['reward']:.2f} - {r['group_mean']:.2f} = "
        f"{r['adv_dr_grpo']:.2f}\n"
        f"  rloo     R - mean(others) = {r['reward']:.2f} - {r['loo_mean']:.2f} = "
        f"{r['adv_rloo']:.2f}\n"
        f"  rf++     (G_0 - batch mean) / batch std = ({r['return_to_go_0']:.2f} - "
        f"{result['batch_return_mean']:.2f}) / {result['batch_return_std']:.2f} = "
        f"{r['adv_reinforce_pp']:.2f}\n"
        f"  gae      A_0 from V(s0) = {r['value_0']:.2f} and the TD errors "
        f"(γ {result['gamma']:g}, λ {result['lam']:g}) = {r['adv_gae']:.2f},\n"
        f"           normalized over the batch (mean {_f(norm['mean'], 2)}, std "
        f"{_f(norm['std'], 2)}) = {r['adv_gae_normalized']:.2f}\n"
        "           (`ppoqa explain-gae --run RUN` shows every step)"
    )
    parts: list[RenderableType] = [head, questions, Fit(table), work]
    if result["groups_with_zero_std"]:
        parts.append(
            Text(
                f"{result['groups_with_zero_std']} group(s) whose completions all scored the "
                "same:\ngrpo, dr_grpo and rloo give them 0 (nothing to learn from them);\n"
                "gae and rf++ do not, their baseline is the critic or the whole batch."
            )
        )
    return Group(*parts)


def _ci(x: dict[str, Any], scale: float = 1.0, digits: int = 0) -> str:
    """IQM [low, high]; ∞ where seeds never got there (completions to 100 %)."""

    def one(v: float | None) -> str:
        return "∞" if v is None else f"{scale * v:.{digits}f}"

    return f"{one(x['iqm'])} [{one(x['ci95'][0])},{one(x['ci95'][1])}]"


def compare_view(report: dict[str, Any]) -> Group:
    """ppoqa compare: per estimator, IQM [95 % CI] over seeds, then what it cost."""
    head = Text(
        f"{report['dataset']}: {report['seeds']} seed(s) per estimator,\n"
        f"{report['iterations']} iterations x {report['completions_per_iteration']} "
        f"completions = {report['completions_per_run']} per run"
    )
    columns = "# | estimator | solved | to 100 % | final acc % | mean acc %"
    table = columns_table("IQM over seeds [95 % bootstrap CI]", columns, left="estimator")
    columns = "# | estimator | G | critic | ms / iteration | peak RSS MB"
    title = "Cost (wall time: this machine, not reproducible)"
    cost = columns_table(title, columns, left="estimator | critic")
    for i, (name, e) in enumerate(report["estimators"].items(), 1):
        table.add_row(
            str(i),
            name,
            f"{e['solved_seeds']}/{report['seeds']}",
            _ci(e["completions_to_solve"]),
            _ci(e["final_accuracy"], 100),
            _ci(e["accuracy_auc"], 100),
        )
        cost.add_row(
            str(i),
            name,
            str(e["settings"].get("group_size", 1)),
            "yes" if name == "gae" else "no",
            f"{1000 * e['wall']['seconds_per_iteration']:.1f}",
            f"{e['wall']['peak_rss_mb']:.0f}",
        )
    table.caption = (
        "to 100 %: completions sampled when greedy accuracy first reached 100 %\n"
        "(∞: some seeds never did within the runs)"
    )
    parts: list[RenderableType] = [head, Fit(table), Fit(cost)]
    if report.get("figures"):
        parts.append(Text("Figures: " + ", ".join(report["figures"])))
    return Group(*parts)


def trace_groups_table(record: dict[str, Any]) -> Table:
    """The first groups of a grouped iteration: question, each completion, its reward and
    advantage under the run's estimator."""
    info = record["completion_groups"]
    title = f"Iteration {record['iteration']}: completions per question, advantage by "
    columns = "# | question | completion | reward | advantage"
    table = columns_table(title + info["estimator"], columns, left="question | completion")
    for group in info["groups"]:
        for k, c in enumerate(group["completions"]):
            table.add_row(
                str(c["episode"]),
                escape(group["question"]) if k == 0 else "",
                escape(c["answer"]),
                f"{c['reward']:+.2f}",
                f"{c['advantage']:+.3f}",
                end_section=k == len(group["completions"]) - 1,
            )
    table.caption = "a group: one question's completions of one iteration (--group-size)"
    return table
